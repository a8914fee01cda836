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
 * float32 inverse frequencies 1 / theta^(2i/dim), i = 0 .. dim/2-1, every step rounded to float32
 * as torch computes `1.0 / theta ** (arange(0, dim, 2).float() / dim)` in float32
 */
export function inverseFrequenciesF32(dim: number, theta: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(Math.pow(theta, f(f(2 * i) / dim))));
  return out;
}
