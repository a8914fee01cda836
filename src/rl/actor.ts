/**
 * The actor objective of the released run from logits, with veRL's micro-batching
 * (dp_actor.update_policy of DPAD's bundled veRL, as the released run executes it):
 *
 *   logits / temperature -> log_probs of the response ids, entropy per token
 *   for each micro-batch (rows split in order, micro_batch_size rows each):
 *     policy_loss = pg_loss - entropy_coeff * entropy_loss + kl_coef * kl_loss   (masked means over THAT micro-batch)
 *     loss += policy_loss / gradient_accumulation,   gradient_accumulation = B // micro_batch_size
 *
 * With micro_batch_size 1 (the released run) every response weighs the same whatever its length:
 * the per-response token mean, averaged over responses. With micro_batch_size B it is the token
 * mean over the whole batch. The trainer and the golden adapter both go through
 * `actorMicroBatchLoss` and `microBatchSplits`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { grpoLoss, type GrpoLossConfig } from './loss.ts';

/** log_softmax(logits)[responses]: logits [B, R, V], responses [B, R] int32 -> [B, R] */
export function logProbsFromLogits(logits: tf.Tensor3D, responses: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const V = logits.shape[2];
    const picked = tf.sum(tf.mul(logits, tf.oneHot(responses.cast('int32'), V)), -1);
    return tf.sub(picked, tf.logSumExp(logits, -1)) as tf.Tensor2D;
  });
}

/** entropy_from_logits: logsumexp(logits) - sum(softmax(logits) * logits), [B, R, V] -> [B, R] */
export function entropyFromLogits(logits: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(() => tf.sub(tf.logSumExp(logits, -1), tf.sum(tf.mul(tf.softmax(logits, -1), logits), -1)) as tf.Tensor2D);
}

export interface MicroBatchPlan {
  /** rows [start, start + size) of each micro-batch, in order (torch's split: the last may be shorter) */
  slices: { start: number; size: number }[];
  /** the divisor of each micro-batch's loss: batch // microBatch, as dp_actor computes it */
  gradientAccumulation: number;
}

/** How dp_actor splits a mini-batch of `batch` rows into micro-batches of `microBatch` rows. */
export function microBatchSplits(batch: number, microBatch: number): MicroBatchPlan {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`actor: the batch must have at least one response (got ${batch})`);
  if (!Number.isInteger(microBatch) || microBatch < 1) throw new Error(`actor: micro_batch_size must be a positive integer (got ${microBatch})`);
  const slices: { start: number; size: number }[] = [];
  for (let s = 0; s < batch; s += microBatch) slices.push({ start: s, size: Math.min(microBatch, batch - s) });
  return { slices, gradientAccumulation: Math.max(1, Math.floor(batch / microBatch)) };
}

export interface ActorLossConfig extends GrpoLossConfig {
  temperature: number;
}

export interface MicroBatchInputs {
  /** [b, R, V] the logits at the positions that predict the response tokens (before the temperature) */
  logits: tf.Tensor3D;
  /** [b, R] int32 response token ids */
  responses: tf.Tensor2D;
  /** [b, R] response mask (1 up to and including the EOS) */
  mask: tf.Tensor2D;
  /** [b, R] log-probs of the policy that sampled (no gradient) */
  oldLogProbs: tf.Tensor2D;
  /** [b, R] reference log-probs, or null for no KL term */
  refLogProbs: tf.Tensor2D | null;
  /** [b, R] token-level advantages (already masked) */
  advantages: tf.Tensor2D;
}

export interface MicroBatchLoss {
  /** policy_loss of this micro-batch (not yet divided by the gradient accumulation) */
  loss: tf.Scalar;
  /** [b, R] */
  logProbs: tf.Tensor2D;
  pgLoss: tf.Scalar;
  clipFrac: tf.Scalar;
  ppoKl: tf.Scalar;
  /** null when `entropy` is false; kept outside any enclosing tidy (the caller disposes it) */
  entropyLoss: tf.Scalar | null;
  klLoss: tf.Scalar;
}

/**
 * One micro-batch of dp_actor.update_policy. `entropy: false` skips the entropy (only allowed
 * when its coefficient is 0, where it does not change the loss).
 */
export function actorMicroBatchLoss(inp: MicroBatchInputs, cfg: ActorLossConfig, opts: { entropy?: boolean } = {}): MicroBatchLoss {
  const withEntropy = opts.entropy ?? true;
  if (!withEntropy && cfg.entropyCoef !== 0) throw new Error(`actor: the entropy can only be skipped when entropyCoef is 0 (got ${cfg.entropyCoef})`);
  let entropyLoss: tf.Scalar | null = null;
  const res = tf.tidy(() => {
    const lg = cfg.temperature === 1 ? inp.logits : tf.div(inp.logits, cfg.temperature) as tf.Tensor3D;
    const logProbs = logProbsFromLogits(lg, inp.responses);
    const entropy = withEntropy ? entropyFromLogits(lg) : null;
    const out = grpoLoss({ logProbs, oldLogProbs: inp.oldLogProbs, refLogProbs: inp.refLogProbs, advantages: inp.advantages, mask: inp.mask, entropy }, cfg);
    entropyLoss = out.entropyLoss; // kept by grpoLoss
    return { loss: out.loss, logProbs, pgLoss: out.pgLoss, clipFrac: out.clipFrac, ppoKl: out.ppoKl, klLoss: out.klLoss };
  });
  return { ...res, entropyLoss };
}

/** The mean over micro-batches of each logged term (veRL appends one value per micro-batch). */
export interface ActorMetrics {
  pgLoss: number;
  clipFrac: number;
  ppoKl: number;
  entropyLoss: number | null;
  klLoss: number;
}

/** Running means of the per-micro-batch metrics. */
export class MetricMeans {
  private n = 0;
  private sums = { pgLoss: 0, clipFrac: 0, ppoKl: 0, entropyLoss: 0, klLoss: 0 };
  private entropy = true;

  add(m: MicroBatchLoss): void {
    this.n++;
    this.sums.pgLoss += m.pgLoss.dataSync()[0];
    this.sums.clipFrac += m.clipFrac.dataSync()[0];
    this.sums.ppoKl += m.ppoKl.dataSync()[0];
    this.sums.klLoss += m.klLoss.dataSync()[0];
    if (m.entropyLoss) this.sums.entropyLoss += m.entropyLoss.dataSync()[0];
    else this.entropy = false;
  }

  means(): ActorMetrics {
    const d = Math.max(1, this.n);
    const s = this.sums;
    return { pgLoss: s.pgLoss / d, clipFrac: s.clipFrac / d, ppoKl: s.ppoKl / d, entropyLoss: this.entropy ? s.entropyLoss / d : null, klLoss: s.klLoss / d };
  }
}

export type ActorLossInputs = MicroBatchInputs;

export interface ActorLoss {
  /** sum over micro-batches of policy_loss / gradient_accumulation (what backward() sees) */
  loss: tf.Scalar;
  /** [B, R] */
  logProbs: tf.Tensor2D;
  metrics: ActorMetrics;
}

const rows = <T extends tf.Tensor>(t: T, start: number, size: number): T => t.slice(start, size) as T;

/**
 * dp_actor.update_policy's loss for one mini-batch of B responses, split into micro-batches
 * of `microBatch` rows. Differentiable in `logits` (wrap in tf.grad for d loss / d logits).
 */
export function actorLoss(inp: ActorLossInputs, cfg: ActorLossConfig & { microBatch: number }): ActorLoss {
  const B = inp.logits.shape[0];
  for (const [k, t] of Object.entries({ responses: inp.responses, mask: inp.mask, oldLogProbs: inp.oldLogProbs, advantages: inp.advantages, refLogProbs: inp.refLogProbs })) {
    if (t && (t.shape[0] !== B || t.shape[1] !== inp.logits.shape[1])) throw new Error(`actor: ${k} has shape [${t.shape}], the logits [${inp.logits.shape}]`);
  }
  const plan = microBatchSplits(B, cfg.microBatch);
  const means = new MetricMeans();
  const out = tf.tidy(() => {
    let loss: tf.Scalar = tf.scalar(0);
    const lps: tf.Tensor2D[] = [];
    for (const { start, size } of plan.slices) {
      const mb = actorMicroBatchLoss({
        logits: rows(inp.logits, start, size), responses: rows(inp.responses, start, size), mask: rows(inp.mask, start, size),
        oldLogProbs: rows(inp.oldLogProbs, start, size), refLogProbs: inp.refLogProbs ? rows(inp.refLogProbs, start, size) : null,
        advantages: rows(inp.advantages, start, size),
      }, cfg);
      means.add(mb);
      mb.entropyLoss?.dispose(); // kept by grpoLoss; its value is in `means`
      loss = tf.add(loss, tf.div(mb.loss, plan.gradientAccumulation));
      lps.push(mb.logProbs);
    }
    return { loss, logProbs: tf.concat(lps, 0) as tf.Tensor2D };
  });
  return { ...out, metrics: means.means() };
}
