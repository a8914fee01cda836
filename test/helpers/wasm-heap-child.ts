/**
 * Child process of test/backend-heap.test.ts (it grows the wasm heap to its 4 GiB limit, so it
 * runs apart from the suite): an LM-head product at Qwen's real vocabulary on wasm.
 *   roomy  the heap has room: the product must be right (and a second one with the same weight too)
 *   full   3.05 GiB are taken first: the product must throw, not return zeros
 * Prints one JSON line.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend.ts';

await initBackend({ quiet: true });
const mode = process.argv[2] ?? 'roomy';
const filler = mode === 'full' ? tf.zeros([Math.round(3.05 * 2 ** 28)]) : null;
const D = 896;
const V = 151936; // Qwen2.5's vocabulary
const w = tf.randomNormal([D, V], 0, 0.02, 'float32', 1); // [D, V] the tied head, held transposed
const x = tf.randomNormal([2, D], 0, 1, 'float32', 2); // [B, D] two hidden states
const xr = x.slice([0, 0], [1, D]).dataSync();
const wc = w.slice([0, 0], [D, 4]).dataSync();
const reference = [0, 1, 2, 3].map(j => {
  let s = 0;
  for (let i = 0; i < D; i++) s += xr[i] * wc[i * 4 + j];
  return s;
});
let error: string | null = null;
const got: number[][] = [];
let zeros = false;
try {
  for (let k = 0; k < 2; k++) {
    const y = tf.matMul(x, w); // [B, V]
    zeros ||= (y.dataSync() as Float32Array).every(v => v === 0);
    got.push(Array.from(y.slice([0, 0], [1, 4]).dataSync() as Float32Array));
    y.dispose();
  }
} catch (e) {
  error = `${(e as Error).name}: ${(e as Error).message}`;
}
console.log(JSON.stringify({ backend: tf.getBackend(), mode, got, reference, error, zeros, filler: filler?.size ?? 0 }));
