/**
 * The learner's gradients when maxStaleness > 0: dp_actor.update_policy as rl/update.ts
 * policyGradients computes it, except that logp_old is the log-probs the worker recorded at
 * generation (with the weights version it had), not recomputed with the learner's current weights:
 * the PPO ratio then corrects for the lag (TRL async GRPO, OpenRLHF --async_train). With
 * maxStaleness 0 the learner uses the trainer's own gradients (ratio 1), so it equals one process.
 */
import { loraDropoutSeed } from '../rl/lora.ts';
import type { GrpoTrainer, Rollout, StepPrompt } from '../rl/trainer.ts';
import { policyGradients, type PolicyGradients } from '../rl/update.ts';

/** A rollout with the log-probs of its tokens at generation and the weights version that made it. */
export type DistRollout = Rollout & { logprobs: number[]; version: number };

/** The gradients of the step's loss with logp_old = the generation-time log-probs (policyGradients with them packed in). */
export function staleGradients(trainer: GrpoTrainer, prompts: StepPrompt[], rollouts: DistRollout[], adv: Float32Array): PolicyGradients {
  const cfg = trainer.config;
  const reference = cfg.lora ? 'adapters-off' : trainer.reference;
  const pad = trainer.policy.model.config.pad_token_id;
  return policyGradients(trainer.policy.model, reference, rollouts.length, (start, size) => {
    const items = rollouts.slice(start, start + size);
    const batch = trainer.packBatch(items, prompts, pad);
    const R = batch.seq.responseLength;
    // [size, R]: each row's generation-time log-probs, 0 past its end (masked)
    const old = new Float32Array(size * R);
    items.forEach((r, b) => {
      if (r.logprobs.length !== r.response.length) throw new Error(`dist: rollout ${r.index} has ${r.logprobs.length} log-probs for ${r.response.length} tokens`);
      old.set(r.logprobs, b * R);
    });
    return { seq: batch.seq, mask: batch.mask, advantages: batch.adv(adv), oldLogProbs: old, dispose: batch.dispose };
  }, cfg, { checkpointed: cfg.checkpointed, dropoutSeed: k => loraDropoutSeed(cfg.seed, trainer.step, k) });
}
