/**
 * Kernel time by kernel for one workload on the active backend (tf.profile):
 *   DPAD_BACKEND=tensorflow npx tsx bench/profile.ts clip|qwen|qwen-step|rollout
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
let work: () => void | Promise<void>;
if (what === 'clip') {
  const m = new ClipModel(VIT_B_32);
  const px = tf.randomNormal([1, 3, 224, 224]) as tf.Tensor4D;
  work = () => { tf.tidy(() => { m.encodeImage(px).dataSync(); }); };
} else if (what === 'rollout') {
  // the world step's batched rollout (src/rl/rollout.ts), demo weights, 4 x 4 rows, on the process's backend
  const { batchedRollout } = await import('../src/rl/rollout.ts');
  const { DEFAULT_WEIGHTS, loadPolicyFrom } = await import('../src/pipeline/bundle.ts');
  const { encodePrompt } = await import('../src/pipeline/policy.ts');
  const { worldSample } = await import('../src/data/world/generator.ts');
  const seedrandom = (await import('seedrandom')).default;
  const policy = loadPolicyFrom(DEFAULT_WEIGHTS);
  const prompts = Array.from({ length: 4 }, (_, i) => {
    const s = worldSample('train', i, { frame: policy.viewSize });
    const e = encodePrompt(policy, s.image, s.query, 'dpad');
    return { ids: e.ids, pixels: e.pixelValues, grid: e.grid, embeds: null };
  });
  const max = Number(process.env.TOKENS ?? 128);
  work = async () => {
    await batchedRollout(policy, prompts, { samplesPerPrompt: 4, maxResponseTokens: max, temperature: 1, topP: 1, topK: 0, rng: seedrandom('p'), stopTokens: policy.stopTokens, backend: 'current' });
  };
} else if (what === 'qwen-step') {
  // cached decode steps only (as generate runs them: fused q/k/v on native), after a 128-token prefill
  // outside the profile: the 0.5B-shaped decoder of bench/run.ts qwen
  const { KVCache } = await import('../src/nn/attention.ts');
  const m = new Qwen2_5_VL(qwen05Config(32768));
  const ids = Int32Array.from({ length: 128 }, (_, i) => (i * 7919) % 32768);
  const cache = new KVCache(m.config.num_hidden_layers);
  m.forward({ ids, batch: 1, length: 128, cache, positions: 'last' }).logits.dispose();
  const fused = tf.getBackend() === 'tensorflow' ? m.fuseQkv() : null;
  let pos = 128;
  const steps = Number(process.env.STEPS ?? 8);
  work = () => {
    for (let i = 0; i < steps; i++) {
      const keyMask = new Int32Array(pos + 1).fill(1);
      const p = Int32Array.from([pos, pos, pos]);
      const out = m.forward({ ids: Int32Array.from([(pos * 31) % 32768]), batch: 1, length: 1, positionIds: p, cache, keyMask, decodeWeights: fused });
      out.logits.dataSync();
      out.logits.dispose();
      pos++;
    }
  };
} else {
  // WIDTH=896: the 0.5B-shaped decoder of bench/run.ts qwen (24 layers, vocab 32768); else a 4-layer one
  const w = Number(process.env.WIDTH ?? 1024);
  const cfg = w === 896 ? qwen05Config(32768) : decoderOfWidth(w);
  const m = new Qwen2_5_VL(cfg);
  const ids = Int32Array.from({ length: 32 }, (_, i) => (i * 7919) % 4096);
  work = () => { generate(m, { ids, batch: 1, length: 32, maxNewTokens: 8, greedy: true, useCache: true }); };
}
await work();
const t0 = performance.now();
await work();
const wall = performance.now() - t0;
const p = await tf.profile(async () => { await work(); });
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
