/**
 * GRPO outcome advantages (veRL compute_grpo_outcome_advantage): each response's scalar score
 * (the sum of its token-level rewards) is normalised within its prompt group,
 * (r - mean) / (std + eps) with the unbiased std; a group of one gets mean 0 and std 1.
 * The advantage is broadcast over the response tokens and masked.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Group statistics in float32, as torch computes them. */
function groupStats(scores: Float32Array): { mean: number; std: number } {
  const f = Math.fround;
  const n = scores.length;
  if (n === 1) return { mean: 0, std: 1 };
  let s = 0;
  for (const v of scores) s += v;
  const mean = f(s / n);
  let q = 0;
  for (const v of scores) q += (v - mean) ** 2;
  return { mean, std: f(Math.sqrt(q / (n - 1))) };
}

/** Per-response scalar advantages from scores [B] and group ids [B]. */
export function groupAdvantages(scores: ArrayLike<number>, index: ArrayLike<number | string>, epsilon = 1e-6): Float32Array {
  const b = scores.length;
  if (index.length !== b) throw new Error(`advantages: ${b} scores but ${index.length} group ids`);
  const groups = new Map<number | string, number[]>();
  for (let i = 0; i < b; i++) {
    const g = index[i];
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(i);
  }
  const out = new Float32Array(b);
  for (const rows of groups.values()) {
    const { mean, std } = groupStats(Float32Array.from(rows, i => scores[i]));
    for (const i of rows) out[i] = (Math.fround(scores[i]) - mean) / Math.fround(std + epsilon);
  }
  return out;
}

/**
 * token_level_rewards [B, T], response_mask [B, T], index [B] -> advantages [B, T]
 * (the returns are the same tensor in GRPO).
 */
export function grpoOutcomeAdvantages(tokenLevelRewards: tf.Tensor2D, responseMask: tf.Tensor2D, index: ArrayLike<number | string>, epsilon = 1e-6): tf.Tensor2D {
  return tf.tidy(() => {
    const scores = tf.sum(tokenLevelRewards, -1).dataSync() as Float32Array;
    const adv = groupAdvantages(scores, index, epsilon);
    return tf.mul(tf.tensor2d(adv, [adv.length, 1]), responseMask.cast('float32')) as tf.Tensor2D;
  });
}

/** Place each response's scalar reward at its last response token: [B] -> [B, T]. */
export function tokenLevelRewards(rewards: ArrayLike<number>, responseMask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, t] = responseMask.shape;
    const m = responseMask.dataSync();
    const out = new Float32Array(b * t);
    for (let i = 0; i < b; i++) {
      let last = -1;
      for (let j = 0; j < t; j++) if (m[i * t + j]) last = j;
      if (last >= 0) out[i * t + last] = rewards[i];
    }
    return tf.tensor2d(out, [b, t]);
  });
}
