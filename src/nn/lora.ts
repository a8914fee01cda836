/**
 * LoRA (Hu et al. 2021) on the project's Linear, with PEFT's semantics (peft/tuners/lora/layer.py):
 *
 *   y = W x + b + scaling * B(A(dropout(x))),   scaling = alpha / r   (alpha / sqrt(r) with rsLoRA)
 *
 * A [r, in] is drawn as kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); B [out, r]
 * starts at zero, so a fresh adapter leaves the layer unchanged. Like the Linear's weight, both are
 * held transposed (A as [in, r], B as [r, out]) for a plain matmul; their checkpoint names and
 * layouts are PEFT's: `<layer>.lora_A.weight` [r, in] and `<layer>.lora_B.weight` [out, r]
 * (Module.exportTensors and Module.load convert at the boundary).
 *
 * The adapter is a child module of its Linear, so its parameters appear in the model's
 * namedParameters / trainableParameters under the layer's name. Switched off (`setEnabled(false)`)
 * or merged, the layer computes exactly its base product: the adapter's delta is not evaluated.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Linear, LinearAdapter } from './layers.ts';
import { Module } from './module.ts';

export interface LoraOptions {
  /** rank r >= 1 */
  r: number;
  /** lora_alpha; scaling = alpha / r (alpha / sqrt(r) with rslora) */
  alpha: number;
  /** lora_dropout on the adapter's input, applied only while `training` (default 0) */
  dropout?: number;
  /** rank-stabilised scaling alpha / sqrt(r) (PEFT's use_rslora) */
  rslora?: boolean;
}

/** PEFT's scaling factor for an adapter. */
export function loraScaling(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

export function checkLoraOptions(o: LoraOptions, where: string): void {
  if (!Number.isInteger(o.r) || o.r < 1) throw new Error(`${where}: LoRA rank r must be an integer >= 1, got ${o.r}`);
  if (typeof o.alpha !== 'number' || !Number.isFinite(o.alpha)) throw new Error(`${where}: LoRA alpha must be a finite number, got ${o.alpha}`);
  const p = o.dropout ?? 0;
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new Error(`${where}: LoRA dropout must be in [0, 1), got ${o.dropout}`);
}

export class LoraAdapter extends Module implements LinearAdapter {
  readonly target: Linear;
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly rslora: boolean;
  readonly scaling: number;
  /** A held as [in, r] (checkpoint 'lora_A.weight' [r, in]) */
  readonly loraA: tf.Variable;
  /** B held as [r, out] (checkpoint 'lora_B.weight' [out, r]) */
  readonly loraB: tf.Variable;
  /** dropout is applied only while training (and only when dropout > 0) */
  training = false;
  /** seed of the next dropout mask; advanced by one per masked call (null: unseeded) */
  dropoutSeed: number | null = null;
  private on = true;
  private isMerged = false;

  /** Attach a fresh adapter to `target` (replacing none: a layer holds one adapter). */
  constructor(target: Linear, opts: LoraOptions) {
    checkLoraOptions(opts, target.prefix || 'linear');
    if (target.adapter) throw new Error(`${target.prefix}: the layer already has an adapter`);
    super(target, '');
    this.target = target;
    this.r = opts.r;
    this.alpha = opts.alpha;
    this.dropout = opts.dropout ?? 0;
    this.rslora = opts.rslora ?? false;
    this.scaling = loraScaling(this.r, this.alpha, this.rslora);
    const inF = target.inFeatures;
    this.loraA = this.param('lora_A.weight', [this.r, inF], { uniform: 1 / Math.sqrt(inF) }, { transposed: true });
    this.loraB = this.param('lora_B.weight', [target.outFeatures, this.r], 'zeros', { transposed: true });
    target.adapter = this;
  }

  get enabled(): boolean {
    return this.on;
  }

  get merged(): boolean {
    return this.isMerged;
  }

  /** Switch the adapter on or off; off, the layer is its base. A merged adapter cannot be switched off. */
  setEnabled(on: boolean): void {
    if (!on && this.isMerged) throw new Error(`${this.prefix}: the adapter is merged into the base weight; unmerge() it before switching it off`);
    this.on = on;
  }

  /** x [..., in] -> scaling * dropout(x) A^T B^T [..., out], or null when off or merged */
  delta(x: tf.Tensor): tf.Tensor | null {
    if (!this.on || this.isMerged) return null;
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      let x2 = x.reshape([-1, this.target.inFeatures]) as tf.Tensor2D;
      if (this.training && this.dropout > 0) {
        const seed = this.dropoutSeed;
        if (seed !== null) this.dropoutSeed = seed + 1;
        x2 = tf.dropout(x2, this.dropout, undefined, seed ?? undefined) as tf.Tensor2D;
      }
      const h = tf.matMul(x2, this.loraA as tf.Tensor2D); // [N, r]
      const y = tf.mul(tf.matMul(h, this.loraB as tf.Tensor2D), this.scaling); // [N, out]
      return y.reshape([...lead, this.target.outFeatures]);
    });
  }

  /** The weight update in the held layout: scaling * A_held B_held [in, out] (= (scaling * B A)^T). */
  deltaWeightHeld(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.matMul(this.loraA as tf.Tensor2D, this.loraB as tf.Tensor2D), this.scaling) as tf.Tensor2D);
  }

  /** Fold the update into the base weight (W += scaling * B A); the layer then costs a plain Linear. */
  merge(): void {
    if (this.isMerged) return;
    tf.tidy(() => this.target.weight.assign(tf.add(this.target.weight, this.deltaWeightHeld())));
    this.isMerged = true;
  }

  /** Take the update back out of the base weight (exact up to float rounding, as PEFT's unmerge). */
  unmerge(): void {
    if (!this.isMerged) return;
    tf.tidy(() => this.target.weight.assign(tf.sub(this.target.weight, this.deltaWeightHeld())));
    this.isMerged = false;
  }

  /** Detach from the layer (which becomes a plain Linear) and free the adapter's tensors. */
  dispose(): void {
    if (this.target.adapter === this) this.target.adapter = null;
    super.dispose();
  }
}

/** Is this a LoRA parameter name (`...lora_A.weight` / `...lora_B.weight`)? */
export function isLoraParam(name: string): boolean {
  return /(^|\.)lora_[AB]\.weight$/.test(name);
}
