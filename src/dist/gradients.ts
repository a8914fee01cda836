/**
 * The learner's gradients when maxStaleness > 0: dp_actor.update_policy as rl/update.ts
 * policyGradients computes it, except that logp_old is the log-probs the worker recorded at
 * generation (with the weights version it had), not recomputed with the learner's current weights:
 * the PPO ratio then corrects for the lag (TRL async GRPO, OpenRLHF --async_train). With
 * maxStaleness 0 the learner uses the trainer's own gradients (ratio 1), so it equals one process.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loraAdapters, setLoraTraining } from '../models/qwen2_5_vl/lora.ts';
import { actorMicroBatchLoss, MetricMeans, microBatchSplits } from '../rl/actor.ts';
import { loraDropoutSeed } from '../rl/lora.ts';
import type { GrpoTrainer, Rollout, StepPrompt } from '../rl/trainer.ts';
import { referenceLogProbs, responseIds, responseLogits, type PolicyGradients } from '../rl/update.ts';

/** A rollout with the log-probs of its tokens at generation and the weights version that made it. */
export type DistRollout = Rollout & { logprobs: number[]; version: number };

/** The gradients of the step's loss with logp_old = the generation-time log-probs. */
export function staleGradients(trainer: GrpoTrainer, prompts: StepPrompt[], rollouts: DistRollout[], adv: Float32Array): PolicyGradients {
  const model = trainer.policy.model;
  const cfg = trainer.config;
  const reference = cfg.lora ? 'adapters-off' : trainer.reference;
  const lora = loraAdapters(model).size > 0;
  const plan = microBatchSplits(rollouts.length, cfg.microBatch);
  const vars = [...model.trainableParameters()];
  const byVar = new Map(vars.map(([n, v]) => [v.name, n]));
  const grads = new Map<string, tf.Tensor>();
  const means = new MetricMeans();
  const useRef = reference !== null && cfg.klCoef !== 0;
  const pad = model.config.pad_token_id;
  let loss = 0;
  let nonFinite: string | null = null;
  plan.slices.forEach(({ start, size }, k) => {
    const items = rollouts.slice(start, start + size);
    const batch = trainer.packBatch(items, prompts, pad);
    const R = batch.seq.responseLength;
    // [size, R]: each row's generation-time log-probs, 0 past its end (masked)
    const old = new Float32Array(size * R);
    items.forEach((r, b) => {
      if (r.logprobs.length !== r.response.length) throw new Error(`dist: rollout ${r.index} has ${r.logprobs.length} log-probs for ${r.response.length} tokens`);
      old.set(r.logprobs, b * R);
    });
    const inputs = tf.tidy(() => {
      const mask = tf.tensor2d(batch.mask, [size, R]);
      return {
        mask, responses: responseIds(batch.seq),
        advantages: tf.mul(tf.tensor2d(batch.adv(adv), [size, 1]), mask) as tf.Tensor2D,
        oldLogProbs: tf.tensor2d(old, [size, R]),
        refLogProbs: useRef ? referenceLogProbs(model, reference!, batch.seq, cfg.temperature) : tf.zeros([size, R]) as tf.Tensor2D,
      };
    });
    try {
      if (lora) setLoraTraining(model, true, loraDropoutSeed(cfg.seed, trainer.step, k));
      let value = NaN;
      const { value: v, grads: g } = tf.variableGrads(() => {
        const out = actorMicroBatchLoss({ ...inputs, refLogProbs: useRef ? inputs.refLogProbs : null, logits: responseLogits(model, batch.seq) }, cfg, { entropy: cfg.entropyCoef !== 0 });
        means.add(out);
        out.entropyLoss?.dispose();
        value = out.loss.dataSync()[0];
        return tf.div(out.loss, plan.gradientAccumulation) as tf.Scalar;
      }, vars.map(([, p]) => p));
      v.dispose();
      for (const [vn, t] of Object.entries(g)) {
        const n = byVar.get(vn)!;
        const prev = grads.get(n);
        if (prev) { grads.set(n, tf.add(prev, t)); prev.dispose(); t.dispose(); } else grads.set(n, t);
      }
      loss += value / plan.gradientAccumulation;
      if (!Number.isFinite(value) && !nonFinite) nonFinite = `non-finite loss ${value} in micro-batch ${k}`;
    } finally {
      if (lora) setLoraTraining(model, false);
      tf.dispose(inputs);
      batch.dispose();
    }
  });
  return { grads, loss, metrics: means.means(), nonFinite };
}
