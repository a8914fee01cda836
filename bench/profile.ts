/**
 * Kernel time by kernel for one workload on the active backend (tf.profile):
 *   DPAD_BACKEND=tensorflow npx tsx bench/profile.ts clip|qwen-decode
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend.ts';
import { VIT_B_32 } from '../src/models/clip/config.ts';
import { ClipModel } from '../src/models/clip/model.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { generate } from '../src/models/qwen2_5_vl/generate.ts';
import { decoderOfWidth, qwen05Config } from './sections.ts';

const info = await initBackend({ quiet: true });
const what = process.argv[2] ?? 'clip';
let work: () => void;
if (what === 'clip') {
  const m = new ClipModel(VIT_B_32);
  const px = tf.randomNormal([1, 3, 224, 224]) as tf.Tensor4D;
  work = () => { tf.tidy(() => { m.encodeImage(px).dataSync(); }); };
} else {
  // WIDTH=896: the 0.5B-shaped decoder of bench/run.ts qwen (24 layers, vocab 32768); else a 4-layer one
  const w = Number(process.env.WIDTH ?? 1024);
  const cfg = w === 896 ? qwen05Config(32768) : decoderOfWidth(w);
  const m = new Qwen2_5_VL(cfg);
  const ids = Int32Array.from({ length: 32 }, (_, i) => (i * 7919) % 4096);
  work = () => { generate(m, { ids, batch: 1, length: 32, maxNewTokens: 8, greedy: true, useCache: true }); };
}
work();
const t0 = performance.now();
work();
const wall = performance.now() - t0;
const p = await tf.profile(() => { work(); });
const by = new Map<string, { ms: number; n: number }>();
for (const k of p.kernels) {
  const e = by.get(k.name) ?? { ms: 0, n: 0 };
  e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  e.n++;
  by.set(k.name, e);
}
const total = [...by.values()].reduce((a, e) => a + e.ms, 0);
console.log(`${what} on ${info.name}: wall ${wall.toFixed(0)} ms (unprofiled), ${p.kernels.length} kernels, kernel time ${total.toFixed(0)} ms`);
for (const [name, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)) {
  console.log(`  ${name.padEnd(22)} ${e.ms.toFixed(1).padStart(8)} ms ${(100 * e.ms / total).toFixed(0).padStart(3)}%  ${e.n} calls, ${(1000 * e.ms / e.n).toFixed(0)} us/call`);
}
