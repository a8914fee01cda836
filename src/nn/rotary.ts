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

/**
 * The tables of applyRotarySwapped: the half-swap permutation [d/2 .. d-1, 0 .. d/2-1] (int32 [d])
 * and sin with the sign of rotateHalf folded in, [-sin1, sin2] over the last axis.
 */
export function swappedRotaryTables(sin: tf.Tensor): { perm: tf.Tensor1D; sinSigned: tf.Tensor } {
  return tf.tidy(() => {
    const d = sin.shape[sin.rank - 1];
    const perm = Int32Array.from({ length: d }, (_, i) => (i + d / 2) % d);
    const sign = Float32Array.from({ length: d }, (_, i) => (i < d / 2 ? -1 : 1));
    return { perm: tf.tensor1d(perm, 'int32'), sinSigned: tf.mul(sin, tf.tensor1d(sign)) };
  });
}

/**
 * applyRotary in 4 ops instead of 6 (for the per-op-bound decode path; no gradient is needed):
 * x * cos + x[..., perm] * sinSigned, tables from swappedRotaryTables. Bit-identical to applyRotary
 * (a sign flip is exact, so (-x2) * sin = x2 * (-sin)).
 */
export function applyRotarySwapped(x: tf.Tensor, cos: tf.Tensor, sinSigned: tf.Tensor, perm: tf.Tensor1D): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(tf.gather(x, perm, x.rank - 1), sinSigned)));
}

/**
 * float32 inverse frequencies 1 / theta^(2i/dim), i = 0 .. dim/2-1, every step rounded to float32
 * as torch computes `1.0 / theta ** (arange(0, dim, 2).float() / dim)` in float32
 */
export function inverseFrequenciesF32(dim: number, theta: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(Math.pow(theta, f(f(2 * i) / dim))));
  return out;
}
