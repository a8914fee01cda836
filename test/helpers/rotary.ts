/**
 * cos/sin tables for integer positions, for the rotary tests only (the models build their own:
 * Qwen2.5-VL's multimodal tables in models/qwen2_5_vl/rope.ts, its vision tower's in vision.ts):
 * positions [L] -> cos, sin [L, dim], the frequencies repeated twice (cat(freqs, freqs)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { inverseFrequenciesF32 } from '../../src/nn/rotary.ts';

export function rotaryTables(positions: ArrayLike<number>, dim: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const inv = inverseFrequenciesF32(dim, theta);
  const L = positions.length;
  const half = dim / 2;
  const c = new Float32Array(L * dim);
  const s = new Float32Array(L * dim);
  for (let p = 0; p < L; p++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(positions[p] * inv[i]); // the product is formed in float32, as torch does
      c[p * dim + i] = c[p * dim + i + half] = Math.cos(a);
      s[p * dim + i] = s[p * dim + i + half] = Math.sin(a);
    }
  }
  return { cos: tf.tensor2d(c, [L, dim]), sin: tf.tensor2d(s, [L, dim]) };
}
