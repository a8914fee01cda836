/**
 * npm run bench [-- <section>...]   sections: backend, clip (default: all)
 * Prints one line per figure; BENCHMARKS.md records them with the machine.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend.ts';
import { VIT_B_32 } from '../src/models/clip/config.ts';
import { ClipModel } from '../src/models/clip/model.ts';
import { matmulGflops, timeMs } from '../src/util/timing.ts';

const sections = process.argv.slice(2).filter(a => a !== '--');
const want = (s: string) => sections.length === 0 || sections.includes(s);
const info = await initBackend({ quiet: true });
console.log(`# ${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}  backend ${info.name}`);

if (want('backend')) {
  for (const b of info.name === 'tensorflow' ? ['tensorflow'] : ['wasm', 'cpu']) {
    await tf.setBackend(b);
    const n = b === 'cpu' ? 512 : 1024;
    console.log(`backend ${b}: matmul ${n}^2 ${(await matmulGflops(n, b === 'cpu' ? 2 : 5)).toFixed(2)} GFLOP/s`);
    if (b === 'wasm' || b === 'tensorflow') {
      const x = tf.randomNormal([64, 512]);
      const w = tf.variable(tf.randomNormal([512, 512]));
      const ms = await timeMs(() => { tf.tidy(() => { tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(x, v)))(w).dataSync(); }); });
      console.log(`backend ${b}: matmul 64x512x512 forward+backward ${ms.toFixed(2)} ms`);
      x.dispose(); w.dispose();
    }
  }
  await tf.setBackend(info.name);
}

if (want('clip')) {
  const m = new ClipModel(VIT_B_32);
  for (const b of [1, 8]) {
    const px = tf.randomNormal([b, 3, 224, 224]) as tf.Tensor4D;
    const msI = await timeMs(() => { tf.tidy(() => { m.encodeImage(px).dataSync(); }); }, { reps: b === 1 ? 5 : 3 });
    px.dispose();
    const ids = tf.tensor2d(Int32Array.from({ length: b * 77 }, (_, i) => (i % 77 === 20 ? 49407 : i % 77 < 20 ? 1000 + i : 0)), [b, 77], 'int32');
    const msT = await timeMs(() => { tf.tidy(() => { m.encodeText(ids).dataSync(); }); }, { reps: 5 });
    ids.dispose();
    console.log(`clip ViT-B/32 batch ${b}: image encode ${msI.toFixed(0)} ms, text encode (77 tokens) ${msT.toFixed(0)} ms`);
  }
  m.dispose();
}
