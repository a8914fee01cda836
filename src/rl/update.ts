/**
 * dp_actor.update_policy on the project's policy: for each micro-batch, the reference and the
 * "old" log-probs (no gradient), then the gradient of actorMicroBatchLoss / gradient_accumulation,
 * accumulated over the micro-batches of the step. The caller clips and applies the update.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { SequenceBatch } from '../models/qwen2_5_vl/generate.ts';
import { checkpointedGrads, checkpointedResponseLogits, type MemoryPeak } from '../models/qwen2_5_vl/checkpointed.ts';
import { loraAdapters, setLoraTraining, withAdaptersDisabled } from '../models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import { actorMicroBatchLoss, logProbsFromLogits, MetricMeans, microBatchSplits, type ActorLossConfig, type ActorMetrics } from './actor.ts';

/** The logits that predict the response tokens: positions P-1 .. L-2 of the forward, [B, R, V]. */
export function responseLogits(model: Qwen2_5_VL, s: SequenceBatch): tf.Tensor3D {
  return tf.tidy(() => {
    const { batch, promptLength: P, responseLength: R } = s;
    const L = P + R;
    if (P < 1) throw new Error('update: a sequence needs at least one prompt token');
    const out = model.forward({ ids: s.ids, batch, length: L, attentionMask: s.attentionMask, pixelValues: s.pixelValues, grids: s.grids, imageEmbeds: s.imageEmbeds });
    return out.logits.slice([0, P - 1, 0], [batch, R, model.config.vocab_size]) as tf.Tensor3D;
  });
}

/** The response token ids of a packed batch, [B, R] int32. */
export function responseIds(s: SequenceBatch): tf.Tensor2D {
  const { batch, promptLength: P, responseLength: R } = s;
  const L = P + R;
  const out = new Int32Array(batch * R);
  for (let b = 0; b < batch; b++) for (let r = 0; r < R; r++) out[b * R + r] = s.ids[b * L + P + r];
  return tf.tensor2d(out, [batch, R], 'int32');
}

/** log-probs [B, R] of the responses under `model` at `temperature`, without gradient (`lean`: the checkpointed pass's head on R positions only). */
export function responseLogProbs(model: Qwen2_5_VL, s: SequenceBatch, temperature: number, lean = false): tf.Tensor2D {
  return tf.tidy(() => {
    const lg = lean ? checkpointedResponseLogits(model, s) : responseLogits(model, s);
    return logProbsFromLogits(temperature === 1 ? lg : tf.div(lg, temperature) as tf.Tensor3D, responseIds(s));
  });
}

/** One packed micro-batch: sequences, the response mask [b * R] and one advantage per row [b]. */
export interface PackedMicroBatch {
  seq: SequenceBatch;
  mask: Float32Array;
  advantages: Float32Array;
  /** logp_old [b * R] recorded at generation (0 past each row's end); absent: recomputed with the current weights */
  oldLogProbs?: Float32Array;
  dispose(): void;
}

export interface PolicyGradients {
  /** accumulated gradients by parameter name (the caller disposes them) */
  grads: Map<string, tf.Tensor>;
  /** the summed loss, sum over micro-batches of policy_loss / gradient_accumulation */
  loss: number;
  /** means over micro-batches of each term */
  metrics: ActorMetrics;
  /** why the update must be skipped (a non-finite loss), or null */
  nonFinite: string | null;
}

/**
 * The KL term's frozen reference: a separate copy of the initial policy (full fine-tuning), or
 * 'adapters-off': the policy itself with its LoRA adapters switched off, which is exactly the
 * frozen base (LoRA GRPO: no second model in memory).
 */
export type ReferencePolicy = Qwen2_5_VL | 'adapters-off' | null;

/** log-probs [B, R] of the responses under the reference, without gradient. */
export function referenceLogProbs(model: Qwen2_5_VL, reference: Qwen2_5_VL | 'adapters-off', s: SequenceBatch, temperature: number, lean = false): tf.Tensor2D {
  if (reference === 'adapters-off') return withAdaptersDisabled(model, () => responseLogProbs(model, s, temperature, lean));
  return responseLogProbs(reference, s, temperature, lean);
}

export interface GradientOptions {
  /**
   * LoRA dropout: the seed of micro-batch k's masks in the gradient pass (the adapters' dropout
   * is on only there; rollouts and the old / reference log-probs run without it). Without it the
   * masks are unseeded.
   */
  dropoutSeed?: (microBatch: number) => number;
  /**
   * Gradient checkpointing (models/qwen2_5_vl/checkpointed.ts): each half decoder layer's forward
   * is recomputed in the backward pass, so one half layer's activations are taped at a time, and
   * every pass applies the LM head to the response positions only. The same gradients up to float
   * rounding; what makes a LoRA step of a real-size policy fit in memory. Default off.
   */
  checkpointed?: boolean;
  /** with `checkpointed`: records the peak tensor bytes sampled inside the gradient pass */
  memory?: MemoryPeak | null;
}

/**
 * Gradients of the actor loss for `batch` responses split into micro-batches of `microBatch`
 * rows; `pack(start, size)` builds the rows [start, start + size) (padded to their own lengths).
 * With LoRA adapters on `model` the gradients are the adapters' (its trainable parameters).
 */
export function policyGradients(
  model: Qwen2_5_VL, reference: ReferencePolicy, batch: number, pack: (start: number, size: number) => PackedMicroBatch,
  cfg: ActorLossConfig & { microBatch: number }, opts: GradientOptions = {},
): PolicyGradients {
  if (reference === 'adapters-off' && !loraAdapters(model).size) throw new Error("update: reference 'adapters-off' needs a policy with LoRA adapters (applyLora)");
  const lora = loraAdapters(model).size > 0;
  const plan = microBatchSplits(batch, cfg.microBatch);
  const vars = [...model.trainableParameters()];
  const byVar = new Map(vars.map(([n, v]) => [v.name, n]));
  const grads = new Map<string, tf.Tensor>();
  const means = new MetricMeans();
  const useRef = reference !== null && cfg.klCoef !== 0;
  const withEntropy = cfg.entropyCoef !== 0;
  const lean = opts.checkpointed ?? false;
  let loss = 0;
  let nonFinite: string | null = null;
  plan.slices.forEach(({ start, size }, k) => {
    const mb = pack(start, size);
    const R = mb.seq.responseLength;
    const inputs = tf.tidy(() => {
      const mask = tf.tensor2d(mb.mask, [size, R]);
      return {
        mask, responses: responseIds(mb.seq),
        advantages: tf.mul(tf.tensor2d(mb.advantages, [size, 1]), mask) as tf.Tensor2D,
        oldLogProbs: mb.oldLogProbs ? tf.tensor2d(mb.oldLogProbs, [size, R]) : responseLogProbs(model, mb.seq, cfg.temperature, lean),
        refLogProbs: useRef ? referenceLogProbs(model, reference!, mb.seq, cfg.temperature, lean) : tf.zeros([size, R]) as tf.Tensor2D,
      };
    });
    try {
      if (lora) setLoraTraining(model, true, opts.dropoutSeed ? opts.dropoutSeed(k) : null);
      let value = NaN;
      const lossOf = (logits: tf.Tensor3D) => {
        const out = actorMicroBatchLoss({ ...inputs, refLogProbs: useRef ? inputs.refLogProbs : null, logits }, cfg, { entropy: withEntropy });
        means.add(out);
        out.entropyLoss?.dispose();
        value = out.loss.dataSync()[0];
        return tf.div(out.loss, plan.gradientAccumulation) as tf.Scalar;
      };
      const params = vars.map(([, p]) => p);
      const { value: v, grads: g } = lean
        ? checkpointedGrads(model, mb.seq, lossOf, params, { memory: opts.memory })
        : tf.variableGrads(() => lossOf(responseLogits(model, mb.seq)), params);
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
      mb.dispose();
    }
  });
  return { grads, loss, metrics: means.means(), nonFinite };
}
