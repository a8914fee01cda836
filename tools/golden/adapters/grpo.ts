/**
 * Golden adapter for the `grpo` family: advantages, the clipped policy loss, the KL, the entropy,
 * the actor loss with veRL's micro-batching, and clip_grad_norm_ + AdamW. Every gradient is tfjs
 * autograd over the project's own loss functions (the ones the trainer uses).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { actorLoss, entropyFromLogits } from '../../../src/rl/actor.ts';
import { AdamW, clipGradNorm } from '../../../src/optim/adamw.ts';
import { grpoOutcomeAdvantages } from '../../../src/rl/advantages.ts';
import { klPenalty, maskedMean, policyLoss, type KlType } from '../../../src/rl/loss.ts';
import type { FamilyAdapter, OutputValue } from '../harness.ts';

const raw = (r: unknown, key: string): RawTensor => {
  if (!r || typeof r !== 'object' || !('data' in r)) throw new Error(`grpo adapter: input '${key}' is not a tensor`);
  return r as RawTensor;
};
const tensor = (inputs: Record<string, unknown>, key: string, dtype: 'float32' | 'int32' = 'float32'): tf.Tensor => {
  const r = raw(inputs[key], key);
  return tf.tensor(dtype === 'int32' ? Int32Array.from(r.data) : Float32Array.from(r.data), r.shape, dtype);
};
const t2 = (inputs: Record<string, unknown>, key: string) => tensor(inputs, key) as tf.Tensor2D;
const out = (t: tf.Tensor) => ({ shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) });
const num = (s: tf.Tensor) => s.dataSync()[0];

export const grpoAdapter: FamilyAdapter = {
  family: 'grpo',
  entries: {
    'grpo.advantages': inputs => tf.tidy(() => {
      const adv = grpoOutcomeAdvantages(t2(inputs, 'token_level_rewards'), t2(inputs, 'response_mask'), raw(inputs.index, 'index').data, Number(inputs.epsilon ?? 1e-6));
      return { advantages: out(adv) };
    }),

    'grpo.policy_loss': inputs => tf.tidy(() => {
      const lp = t2(inputs, 'log_probs');
      const old = t2(inputs, 'old_log_probs'), adv = t2(inputs, 'advantages'), mask = t2(inputs, 'response_mask');
      const clip = Number(inputs.clip_ratio);
      const parts = policyLoss(lp, old, adv, mask, clip);
      const grad = tf.grad((x: tf.Tensor) => policyLoss(x, old, adv, mask, clip).pgLoss)(lp);
      return { pg_loss: num(parts.pgLoss), pg_clipfrac: num(parts.clipFrac), ppo_kl: num(parts.ppoKl), grad_log_probs: out(grad) };
    }),

    'grpo.kl': inputs => tf.tidy(() => {
      const lp = t2(inputs, 'log_probs'), ref = t2(inputs, 'ref_log_probs'), mask = t2(inputs, 'response_mask');
      const type = String(inputs.kl_type) as KlType;
      const kl = klPenalty(lp, ref, type);
      const grad = tf.grad((x: tf.Tensor) => maskedMean(klPenalty(x, ref, type), mask))(lp);
      return { kl: out(kl), kl_loss: num(maskedMean(kl, mask)), grad_log_probs: out(grad) };
    }),

    'grpo.entropy': inputs => tf.tidy(() => {
      const logits = tensor(inputs, 'logits') as tf.Tensor3D, mask = t2(inputs, 'response_mask');
      const ent = entropyFromLogits(logits);
      const grad = tf.grad((x: tf.Tensor) => maskedMean(entropyFromLogits(x as tf.Tensor3D), mask))(logits);
      return { entropy: out(ent), entropy_loss: num(maskedMean(ent, mask)), grad_logits: out(grad) };
    }),

    'grpo.actor_loss': inputs => tf.tidy(() => {
      const logits = tensor(inputs, 'logits') as tf.Tensor3D;
      const rest = {
        responses: tensor(inputs, 'responses', 'int32') as tf.Tensor2D, mask: t2(inputs, 'response_mask'),
        oldLogProbs: t2(inputs, 'old_log_probs'), refLogProbs: inputs.ref_log_probs ? t2(inputs, 'ref_log_probs') : null,
        advantages: t2(inputs, 'advantages'),
      };
      const cfg = {
        clipRatio: Number(inputs.clip_ratio), entropyCoef: Number(inputs.entropy_coeff), klCoef: Number(inputs.kl_coef),
        klType: String(inputs.kl_type) as KlType, temperature: Number(inputs.temperature ?? 1), microBatch: Number(inputs.micro_batch_size),
      };
      const res = actorLoss({ logits, ...rest }, cfg);
      const grad = tf.grad((x: tf.Tensor) => actorLoss({ logits: x as tf.Tensor3D, ...rest }, cfg).loss)(logits);
      const m = res.metrics;
      return {
        loss: num(res.loss), log_probs: out(res.logProbs), pg_loss: m.pgLoss, pg_clipfrac: m.clipFrac, ppo_kl: m.ppoKl,
        entropy_loss: m.entropyLoss ?? NaN, kl_loss: m.klLoss, grad_logits: out(grad),
      };
    }),

    'grpo.optimizer': inputs => {
      const names = Object.keys(inputs).filter(k => /^param\d+_init$/.test(k)).map(k => k.replace(/_init$/, '')).sort();
      const steps = Number(inputs.steps);
      const [b1, b2] = inputs.betas as [number, number];
      const opt = new AdamW({ lr: Number(inputs.lr), betas: [b1, b2], eps: Number(inputs.eps), weightDecay: Number(inputs.weight_decay) });
      const params = new Map(names.map(n => [n, tf.variable(tensor(inputs, `${n}_init`))]));
      const result: Record<string, OutputValue> = {};
      try {
        for (let s = 0; s < steps; s++) {
          const grads = new Map(names.map(n => [n, tensor(inputs, `${n.replace('param', 'grad')}_step${s}`)]));
          result[`grad_norm_step${s}`] = clipGradNorm(grads, Number(inputs.max_grad_norm));
          opt.apply(params, grads);
          tf.dispose([...grads.values()]);
          for (const n of names) result[`${n}_step${s}`] = out(params.get(n)!);
        }
      } finally {
        opt.dispose();
        tf.dispose([...params.values()]);
      }
      return result;
    },
  },
};
