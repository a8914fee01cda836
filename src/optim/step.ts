/**
 * One optimizer step, shared by the GRPO trainer (rl/trainer.ts) and the demo pretraining loops
 * (demo/pretrain_loop.ts, pretrain_vision.ts, pretrain_align.ts): global-norm gradient clipping,
 * the AdamW update and the release of the gradients, with the guards that skip an update whose
 * loss or gradient norm is not finite.
 */
import * as tf from '@tensorflow/tfjs-core';
import { clipGradNorm, type AdamW } from './adamw.ts';

export interface StepOptions {
  /** the global gradient-norm clip (torch.nn.utils.clip_grad_norm_'s max_norm) */
  maxNorm: number;
  /** this step's learning rate (default: the optimizer's) */
  lr?: number;
  /** why the update must be skipped, when already known (e.g. a non-finite loss); the norm is then not computed */
  skip?: string | null;
  /** skip the update when the gradient norm is not finite (default true) */
  guardNorm?: boolean;
}

export interface StepResult {
  /** the gradient norm before clipping (NaN when the step was skipped before it was computed) */
  gradNorm: number;
  /** why the update was skipped, or null when it was applied */
  skipped: string | null;
}

/**
 * Clip `grads` (by parameter name) to `maxNorm`, apply them to `params` with `opt` unless the step
 * is skipped, and dispose every gradient (the map is consumed).
 */
export function applyGradients(opt: AdamW, params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, o: StepOptions): StepResult {
  try {
    let skipped = o.skip ?? null;
    let gradNorm = NaN;
    if (!skipped) {
      gradNorm = clipGradNorm(grads, o.maxNorm);
      if ((o.guardNorm ?? true) && !Number.isFinite(gradNorm)) skipped = `non-finite gradient norm ${gradNorm}`;
    }
    if (!skipped) opt.apply(params, grads, o.lr);
    return { gradNorm, skipped };
  } finally {
    tf.dispose([...grads.values()]);
  }
}

/**
 * The gradients of `lossFn` with respect to `params`, keyed by parameter name (the caller disposes
 * them), and the loss value.
 */
export function namedGradients(params: Map<string, tf.Variable>, lossFn: () => tf.Scalar): { loss: number; grads: Map<string, tf.Tensor> } {
  const names = new Map([...params].map(([n, v]) => [v.name, n]));
  const { value, grads } = tf.variableGrads(lossFn, [...params.values()]);
  const loss = value.dataSync()[0];
  value.dispose();
  return { loss, grads: new Map(Object.entries(grads).map(([k, t]) => [names.get(k)!, t])) };
}

/**
 * One step on a scalar loss: its gradients, then applyGradients. With `guardLoss` (default true)
 * a non-finite loss skips the update.
 */
export function optimizerStep(opt: AdamW, params: Map<string, tf.Variable>, lossFn: () => tf.Scalar, o: StepOptions & { guardLoss?: boolean }): StepResult & { loss: number } {
  const { loss, grads } = namedGradients(params, lossFn);
  const skip = o.skip ?? ((o.guardLoss ?? true) && !Number.isFinite(loss) ? `non-finite loss ${loss}` : null);
  return { loss, ...applyGradients(opt, params, grads, { ...o, skip }) };
}
