/** Small timing helpers for benchmarks and the doctor. */
import * as tf from '@tensorflow/tfjs-core';

/** Median wall time in ms of `fn` over `reps` runs after `warmup` runs; `fn` must read its result back. */
export async function timeMs(fn: () => void | Promise<void>, opts: { reps?: number; warmup?: number } = {}): Promise<number> {
  const reps = opts.reps ?? 5;
  for (let i = 0; i < (opts.warmup ?? 1); i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

/** Measured float32 matmul throughput of the active backend, n x n. */
export async function matmulGflops(n = 1024, reps = 5): Promise<number> {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const ms = await timeMs(() => { tf.tidy(() => { tf.matMul(a, b).dataSync(); }); }, { reps });
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / (ms * 1e6);
}
