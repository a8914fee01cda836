/** Golden adapter for the `grpo` family: advantages, the clipped loss, the KL and the gradient. */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { grpoOutcomeAdvantages } from '../../../src/rl/advantages.ts';
import { grpoLoss, type KlType } from '../../../src/rl/loss.ts';
import type { FamilyAdapter } from '../harness.ts';

const t2 = (r: unknown) => {
  const raw = r as RawTensor;
  return tf.tensor2d(Float32Array.from(raw.data), raw.shape as [number, number]);
};

export const grpoAdapter: FamilyAdapter = {
  family: 'grpo',
  entries: {
    'grpo.advantages': inputs => tf.tidy(() => {
      const adv = grpoOutcomeAdvantages(t2(inputs.token_level_rewards), t2(inputs.response_mask), (inputs.index as RawTensor).data, Number(inputs.epsilon ?? 1e-6));
      return { advantages: { shape: adv.shape, data: adv.dataSync() } };
    }),
    'grpo.loss': inputs => tf.tidy(() => {
      const logProbs = t2(inputs.log_probs);
      const rest = {
        oldLogProbs: t2(inputs.old_log_probs), refLogProbs: t2(inputs.ref_log_probs),
        advantages: t2(inputs.advantages), mask: t2(inputs.response_mask),
      };
      const cfg = { clipRatio: Number(inputs.clip_ratio), klCoef: Number(inputs.kl_coef), klType: String(inputs.kl_type) as KlType, entropyCoef: 0 };
      const parts = grpoLoss({ logProbs, ...rest }, cfg);
      const grad = tf.grad((lp: tf.Tensor) => grpoLoss({ logProbs: lp, ...rest }, cfg).loss)(logProbs);
      const scalar = (s: tf.Scalar) => s.dataSync()[0];
      return {
        pg_loss: scalar(parts.pgLoss), pg_clipfrac: scalar(parts.clipFrac), ppo_kl: scalar(parts.ppoKl),
        kl_loss: scalar(parts.klLoss), kl: { shape: parts.kl.shape, data: parts.kl.dataSync() },
        loss: scalar(parts.loss), grad_log_probs: { shape: grad.shape, data: grad.dataSync() },
      };
    }),
  },
};
