/**
 * Shared layers. Parameters keep PyTorch's names and layouts (Linear weight [out, in],
 * Conv2d weight [out, in/groups, kh, kw]) so checkpoints load without reshaping.
 * Initialisation follows torch.nn's defaults (uniform +-1/sqrt(fan_in)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module } from './module.ts';

/** A hook that adds to a Linear's output, e.g. a LoRA adapter (src/nn/lora.ts); null = nothing to add. */
export interface LinearAdapter {
  /** x [..., in] -> the term added to the output [..., out], or null (adapter off or merged) */
  delta(x: tf.Tensor): tf.Tensor | null;
}

export class Linear extends Module {
  /** held as [in, out]; the checkpoint's 'weight' is [out, in] */
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null; // [out]
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** an optional adapter whose delta is added to the output (null: the plain layer, no cost) */
  adapter: LinearAdapter | null = null;

  constructor(parent: Module | null, prefix: string, inFeatures: number, outFeatures: number, opts: { bias?: boolean } = {}) {
    super(parent, prefix);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', [outFeatures, inFeatures], { uniform: bound }, { transposed: true });
    this.bias = opts.bias === false ? null : this.param('bias', [outFeatures], { uniform: bound });
  }

  /** x [..., in] -> [..., out] */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const y = linear(x, this.weight, this.bias);
      const d = this.adapter ? this.adapter.delta(x) : null;
      return d ? tf.add(y, d) : y;
    });
  }
}

/**
 * Whether a rank > 2 input may multiply the [in, out] weight directly (BatchMatMulV2 broadcasts it:
 * the same single GEMM, bit-identical, without the two Reshape dispatches of ~40 us each around it):
 * on the native backend outside gradient recording. Not under a tape (tfjs's BatchMatMul gradient
 * does not reduce broadcast batch dimensions) nor on wasm (its BatchMatMul wrapper splits batches).
 */
export function broadcastsWeights(): boolean {
  return tf.getBackend() === 'tensorflow' && !tf.engine().isTapeOn();
}

/** y = x W + b with W held as [in, out] (the transpose of PyTorch's weight), for x of any rank. */
export function linear(x: tf.Tensor, weightT: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  return tf.tidy(() => {
    const inF = x.shape[x.rank - 1];
    if (inF !== weightT.shape[0]) throw new Error(`linear: input has ${inF} features, weight expects ${weightT.shape[0]}`);
    if (x.rank === 2 || (x.rank > 2 && broadcastsWeights())) {
      const y = tf.matMul(x as tf.Tensor3D, weightT as tf.Tensor2D as unknown as tf.Tensor3D);
      return bias ? tf.add(y, bias) : y;
    }
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, inF]);
    let y = tf.matMul(x2, weightT as tf.Tensor2D);
    if (bias) y = tf.add(y, bias);
    return y.reshape([...lead, weightT.shape[1] as number]);
  });
}

export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly eps: number;

  constructor(parent: Module | null, prefix: string, dim: number, opts: { eps?: number; bias?: boolean } = {}) {
    super(parent, prefix);
    this.eps = opts.eps ?? 1e-5;
    this.weight = this.param('weight', [dim], 'ones');
    this.bias = opts.bias === false ? null : this.param('bias', [dim], 'zeros');
  }

  /** normalise over the last axis: x [..., D] */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => layerNorm(x, this.weight, this.bias, this.eps));
  }
}

/** LayerNorm over the last axis with biased variance, as torch.nn.functional.layer_norm. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor | null, bias: tf.Tensor | null, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const mean = tf.mean(x, axis, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), axis, true);
    let y = tf.mul(xc, tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

/** LayerNorm over the channel axis of NCHW tensors (SAM2's LayerNorm2d). */
export function layerNorm2d(x: tf.Tensor4D, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const mean = tf.mean(x, 1, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), 1, true);
    const y = tf.mul(xc, tf.rsqrt(tf.add(variance, eps)));
    const c = weight.shape[0];
    return tf.add(tf.mul(y, weight.reshape([1, c, 1, 1])), bias.reshape([1, c, 1, 1])) as tf.Tensor4D;
  });
}

export class RMSNorm extends Module {
  readonly weight: tf.Variable;
  readonly eps: number;

  constructor(parent: Module | null, prefix: string, dim: number, opts: { eps?: number } = {}) {
    super(parent, prefix);
    this.eps = opts.eps ?? 1e-6;
    this.weight = this.param('weight', [dim], 'ones');
  }

  /** x * rsqrt(mean(x^2) + eps) * weight over the last axis */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => rmsNorm(x, this.weight, this.eps));
  }
}

export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), x.rank - 1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
  });
}

export class Embedding extends Module {
  readonly weight: tf.Variable; // [num, dim]

  constructor(parent: Module | null, prefix: string, num: number, dim: number) {
    super(parent, prefix);
    this.weight = this.param('weight', [num, dim], { normal: 1 });
  }

  /** ids [...] (int32) -> [..., dim] */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      // outside gradient recording, one gather of the ids as they are (2 reshape dispatches fewer)
      if (ids.dtype === 'int32' && !tf.engine().isTapeOn()) return tf.gather(this.weight, ids);
      const flat = ids.reshape([-1]);
      const out = tf.gather(this.weight, flat.dtype === 'int32' ? flat : flat.cast('int32'));
      return out.reshape([...ids.shape, this.weight.shape[1] as number]);
    });
  }
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  bias?: boolean;
  groups?: number;
}

function pair(v: number | readonly number[] | undefined, d: number): [number, number] {
  if (v === undefined) return [d, d];
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

export class Conv2d extends Module {
  readonly weight: tf.Variable; // [out, in/groups, kh, kw]
  readonly bias: tf.Variable | null;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly groups: number;

  constructor(parent: Module | null, prefix: string, inCh: number, outCh: number, kernel: number | [number, number], opts: Conv2dOptions = {}) {
    super(parent, prefix);
    const [kh, kw] = pair(kernel, 1);
    this.groups = opts.groups ?? 1;
    if (inCh % this.groups || outCh % this.groups) throw new Error(`${this.prefix}: channels ${inCh}->${outCh} not divisible by groups ${this.groups}`);
    this.stride = pair(opts.stride, 1);
    this.padding = pair(opts.padding, 0);
    const bound = 1 / Math.sqrt((inCh / this.groups) * kh * kw);
    this.weight = this.param('weight', [outCh, inCh / this.groups, kh, kw], { uniform: bound });
    this.bias = opts.bias === false ? null : this.param('bias', [outCh], { uniform: bound });
  }

  /** x [B, C, H, W] -> [B, out, H', W'] (NCHW, as PyTorch) */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => conv2dNchw(x, this.weight, this.bias, this.stride, this.padding, this.groups));
  }
}

/** torch.nn.functional.conv2d on NCHW input with an [out, in/groups, kh, kw] weight. */
export function conv2dNchw(
  x: tf.Tensor4D, weight: tf.Tensor, bias: tf.Tensor | null,
  stride: [number, number] = [1, 1], padding: [number, number] = [0, 0], groups = 1,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [, inPerGroup] = weight.shape;
    if (x.shape[1] !== inPerGroup * groups) throw new Error(`conv2d: input has ${x.shape[1]} channels, weight expects ${inPerGroup * groups}`);
    let xh = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D; // [B, H, W, C]
    if (padding[0] || padding[1]) xh = tf.pad(xh, [[0, 0], [padding[0], padding[0]], [padding[1], padding[1]], [0, 0]]);
    let y: tf.Tensor4D;
    if (groups === 1) {
      const f = tf.transpose(weight, [2, 3, 1, 0]) as tf.Tensor4D; // [kh, kw, in, out]
      y = tf.conv2d(xh, f, stride, 'valid');
    } else if (groups === x.shape[1] && inPerGroup === 1) {
      const out = weight.shape[0];
      const mult = out / groups;
      const f = tf.transpose(weight.reshape([groups, mult, weight.shape[2] as number, weight.shape[3] as number]), [2, 3, 0, 1]) as tf.Tensor4D;
      y = tf.depthwiseConv2d(xh, f, stride, 'valid');
    } else {
      const xs = tf.split(xh, groups, 3);
      const ws = tf.split(weight, groups, 0);
      y = tf.concat(xs.map((xi, i) => tf.conv2d(xi as tf.Tensor4D, tf.transpose(ws[i], [2, 3, 1, 0]) as tf.Tensor4D, stride, 'valid')), 3);
    }
    if (bias) y = tf.add(y, bias);
    return tf.transpose(y, [0, 3, 1, 2]) as tf.Tensor4D;
  });
}
