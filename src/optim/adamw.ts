/**
 * AdamW with decoupled weight decay, as torch.optim.AdamW computes it:
 *   p <- p - lr * wd * p
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * and global-norm gradient clipping as torch.nn.utils.clip_grad_norm_.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamWConfig {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/**
 * The released 7B run's AdamW settings, the one table of them: the GRPO training config's
 * defaults (rl/config.ts TRAIN_SCHEMA) read lr, betas, eps and weightDecay from here.
 */
export const DEFAULT_ADAMW: AdamWConfig = Object.freeze({ lr: 1e-6, betas: Object.freeze([0.9, 0.999]) as [number, number], eps: 1e-8, weightDecay: 1e-2 });

/** Serializable optimizer state: step and the two moments of each parameter, by name. */
export interface AdamWState {
  step: number;
  m: Map<string, tf.Tensor>;
  v: Map<string, tf.Tensor>;
}

/** A variable holding `init`'s data; `init` itself is released (tf.variable shares, not takes, it). */
export function ownedVariable(init: tf.Tensor, trainable = false, name?: string): tf.Variable {
  const v = tf.variable(init, trainable, name);
  init.dispose();
  return v;
}

export class AdamW {
  readonly config: AdamWConfig;
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(config: Partial<AdamWConfig> = {}) {
    this.config = { ...DEFAULT_ADAMW, ...config };
  }

  /** Apply one update to `params` from `grads` (same names); parameters without a gradient are left alone. */
  apply(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr = this.config.lr): void {
    const { betas: [b1, b2], eps, weightDecay } = this.config;
    this.step++;
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      if (!tf.util.arraysEqual(g.shape, p.shape)) throw new Error(`AdamW: gradient of ${name} has shape [${g.shape}], parameter [${p.shape}]`);
      if (!this.m.has(name)) {
        this.m.set(name, ownedVariable(tf.zerosLike(p)));
        this.v.set(name, ownedVariable(tf.zerosLike(p)));
      }
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const decayed = weightDecay !== 0 ? tf.mul(p, 1 - lr * weightDecay) : p;
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(vNew), sqrtBc2), eps);
        m.assign(mNew);
        v.assign(vNew);
        p.assign(tf.sub(decayed, tf.mul(stepSize, tf.div(mNew, denom))));
      });
    }
  }

  /** A copy of the state (the caller disposes the tensors). */
  state(): AdamWState {
    return {
      step: this.step,
      m: new Map([...this.m].map(([k, t]) => [k, t.clone()])),
      v: new Map([...this.v].map(([k, t]) => [k, t.clone()])),
    };
  }

  loadState(s: AdamWState): void {
    this.disposeState();
    this.step = s.step;
    for (const [k, t] of s.m) this.m.set(k, ownedVariable(t.clone()));
    for (const [k, t] of s.v) this.v.set(k, ownedVariable(t.clone()));
  }

  private disposeState(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }

  dispose(): void {
    this.disposeState();
  }
}

/**
 * Scale gradients in place so their global L2 norm is at most maxNorm
 * (coef = maxNorm / (norm + 1e-6), applied only when < 1). Returns the norm before clipping;
 * a non-finite norm is returned as is and the gradients are left untouched (the caller skips the step).
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const norm = tf.tidy(() => {
    const sq = [...grads.values()].map(g => tf.sum(tf.square(g)));
    return sq.length ? tf.sqrt(tf.addN(sq)).dataSync()[0] : 0;
  });
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const [k, g] of grads) {
      const s = tf.mul(g, coef);
      g.dispose();
      grads.set(k, s);
    }
  }
  return norm;
}
