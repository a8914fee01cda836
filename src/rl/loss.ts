/**
 * The GRPO objective of the released run (veRL core_algos): PPO-clipped policy gradient,
 * an entropy bonus, and a KL penalty to the frozen reference, all as masked means over the
 * response tokens of the micro-batch, and all tfjs ops so gradients flow.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_TRAIN_CONFIG, type KlType } from './config.ts';

export type { KlType };

/** sum(values * mask) / sum(mask) over all elements */
export function maskedMean(values: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const m = mask.cast('float32');
    return tf.div(tf.sum(tf.mul(values, m)), tf.sum(m)) as tf.Scalar;
  });
}

export interface PolicyLossParts {
  pgLoss: tf.Scalar;
  /** fraction of tokens where the clipped branch is taken */
  clipFrac: tf.Scalar;
  /** masked mean of old_logp - logp */
  ppoKl: tf.Scalar;
}

/** loss_pg = masked_mean(max(-A ratio, -A clip(ratio, 1-c, 1+c))), ratio = exp(logp - logp_old) */
export function policyLoss(logProbs: tf.Tensor, oldLogProbs: tf.Tensor, advantages: tf.Tensor, mask: tf.Tensor, clipRatio = DEFAULT_TRAIN_CONFIG.clipRatio): PolicyLossParts {
  return tf.tidy(() => {
    const negApproxKl = tf.sub(logProbs, oldLogProbs);
    const ratio = tf.exp(negApproxKl);
    const ppoKl = maskedMean(tf.neg(negApproxKl), mask);
    const l1 = tf.mul(tf.neg(advantages), ratio);
    const l2 = tf.mul(tf.neg(advantages), tf.clipByValue(ratio, 1 - clipRatio, 1 + clipRatio));
    const pgLoss = maskedMean(tf.maximum(l1, l2), mask);
    const clipFrac = maskedMean(tf.greater(l2, l1).cast('float32'), mask);
    return { pgLoss, clipFrac, ppoKl };
  });
}

/**
 * Per-token KL estimate to the reference. low_var_kl (Schulman's k3):
 * kl = ref - logp; exp(kl) - kl - 1, clamped to [-10, 10].
 */
export function klPenalty(logProbs: tf.Tensor, refLogProbs: tf.Tensor, type: KlType = DEFAULT_TRAIN_CONFIG.klType): tf.Tensor {
  return tf.tidy(() => {
    switch (type) {
      case 'kl': return tf.sub(logProbs, refLogProbs);
      case 'abs': {
        // |d| as d * sign(d): torch's abs has gradient 0 at 0 (tfjs's abs gives -1 there)
        const d = tf.sub(logProbs, refLogProbs);
        return tf.mul(d, tf.sign(d));
      }
      case 'mse': return tf.mul(0.5, tf.square(tf.sub(logProbs, refLogProbs)));
      case 'low_var_kl': {
        const kl = tf.sub(refLogProbs, logProbs);
        return tf.clipByValue(tf.sub(tf.sub(tf.exp(kl), kl), 1), -10, 10);
      }
      default: throw new Error(`unknown kl type '${type as string}' (kl, abs, mse, low_var_kl)`);
    }
  });
}

export interface GrpoLossConfig {
  clipRatio: number;
  klCoef: number;
  klType: KlType;
  entropyCoef: number;
}

/** the training config's defaults (config.ts TRAIN_SCHEMA, the one table) */
export const DEFAULT_GRPO_LOSS: GrpoLossConfig = Object.freeze({
  clipRatio: DEFAULT_TRAIN_CONFIG.clipRatio, klCoef: DEFAULT_TRAIN_CONFIG.klCoef, klType: DEFAULT_TRAIN_CONFIG.klType, entropyCoef: DEFAULT_TRAIN_CONFIG.entropyCoef,
});

export interface GrpoLoss extends PolicyLossParts {
  kl: tf.Tensor;
  klLoss: tf.Scalar;
  /** masked mean of the entropy (kept outside any enclosing tidy: the caller disposes it); null when no entropy was given */
  entropyLoss: tf.Scalar | null;
  /** pg_loss - entropy_coef * entropy_loss + kl_coef * kl_loss */
  loss: tf.Scalar;
}

/**
 * The objective of one micro-batch, every term a masked mean over its tokens;
 * `entropy` [B, T] may be null (no bonus). With no reference the KL term is 0.
 */
export function grpoLoss(
  inputs: { logProbs: tf.Tensor; oldLogProbs: tf.Tensor; refLogProbs: tf.Tensor | null; advantages: tf.Tensor; mask: tf.Tensor; entropy?: tf.Tensor | null },
  config: Partial<GrpoLossConfig> = {},
): GrpoLoss {
  const c = { ...DEFAULT_GRPO_LOSS, ...config };
  let entropyLoss: tf.Scalar | null = null;
  const out = tf.tidy(() => {
    const parts = policyLoss(inputs.logProbs, inputs.oldLogProbs, inputs.advantages, inputs.mask, c.clipRatio);
    let loss: tf.Tensor = parts.pgLoss;
    if (inputs.entropy) {
      const e = tf.keep(maskedMean(inputs.entropy, inputs.mask));
      entropyLoss = e;
      if (c.entropyCoef !== 0) loss = tf.sub(loss, tf.mul(e, c.entropyCoef));
    }
    const kl = inputs.refLogProbs ? klPenalty(inputs.logProbs, inputs.refLogProbs, c.klType) : tf.zerosLike(inputs.logProbs);
    const klLoss = maskedMean(kl, inputs.mask);
    if (inputs.refLogProbs && c.klCoef !== 0) loss = tf.add(loss, tf.mul(klLoss, c.klCoef));
    return { ...parts, kl, klLoss, loss: loss as tf.Scalar };
  });
  return { ...out, entropyLoss };
}
