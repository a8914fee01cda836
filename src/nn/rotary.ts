/** Rotary position embedding helpers (the rotate-half convention of Llama/Qwen). */
import * as tf from '@tensorflow/tfjs-core';

/** [x1, x2] -> [-x2, x1] over the last axis */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1];
    const [x1, x2] = tf.split(x, [d / 2, d / 2], x.rank - 1);
    return tf.concat([tf.neg(x2), x1], x.rank - 1);
  });
}

/** x * cos + rotateHalf(x) * sin (cos/sin broadcast against x) */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}

/** inverse frequencies 1 / theta^(2i/dim), i = 0 .. dim/2-1, computed in float64 then rounded to float32 */
export function inverseFrequencies(dim: number, theta: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = 1 / Math.pow(theta, (2 * i) / dim);
  return out;
}

/**
 * cos/sin tables for integer positions: positions [L] -> cos, sin [L, dim] where the
 * frequencies are repeated twice (cat(freqs, freqs)) as in the reference implementations.
 */
export function rotaryTables(positions: ArrayLike<number>, dim: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const inv = inverseFrequencies(dim, theta);
  const L = positions.length;
  const half = dim / 2;
  const c = new Float32Array(L * dim);
  const s = new Float32Array(L * dim);
  const f32 = new Float32Array(1);
  for (let p = 0; p < L; p++) {
    for (let i = 0; i < half; i++) {
      f32[0] = positions[p] * inv[i]; // the product is formed in float32, as torch does
      const a = f32[0];
      c[p * dim + i] = c[p * dim + i + half] = Math.cos(a);
      s[p * dim + i] = s[p * dim + i + half] = Math.sin(a);
    }
  }
  return { cos: tf.tensor2d(c, [L, dim]), sin: tf.tensor2d(s, [L, dim]) };
}
