/**
 * Bounded-memory evaluation of row-wise functions. A function that treats the rows of axis 0
 * independently (a token-wise MLP, attention within windows) gives the same result on slices of
 * its input, so large inputs are processed a slice at a time: each slice's intermediates are freed
 * before the next slice starts, and only the outputs are kept. Autograd sees slice + concat,
 * whose gradients are exact.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * fn(x) computed over slices of at most `rows` rows of axis 0, concatenated along axis 0.
 * With rows >= x.shape[0] it is just fn(x).
 */
export function mapRowChunks<T extends tf.Tensor>(x: T, rows: number, fn: (slice: T) => tf.Tensor): tf.Tensor {
  const n = x.shape[0] as number;
  const step = Math.max(1, Math.floor(rows));
  if (step >= n) return fn(x);
  const rest = x.shape.slice(1) as number[];
  const parts: tf.Tensor[] = [];
  for (let s = 0; s < n; s += step) {
    // fresh begin/size arrays per slice: the slice's gradient reads them from its attributes later
    const begin = [s, ...rest.map(() => 0)];
    const size = [Math.min(step, n - s), ...rest];
    parts.push(tf.tidy(() => fn(x.slice(begin, size) as T)));
  }
  const out = tf.concat(parts, 0);
  // the concat's gradient does not read its inputs: the parts can go now, not at the caller's tidy
  tf.dispose(parts);
  return out;
}

/** Rows per chunk so that an intermediate of `perRow` elements per row stays under `budget` elements. */
export function rowsWithin(budget: number, perRow: number): number {
  return Math.max(1, Math.floor(budget / Math.max(1, perRow)));
}

/** The largest intermediate (elements) the chunked paths aim to materialise at once (16 MB of float32). */
export const CHUNK_ELEMENTS = 1 << 22;
