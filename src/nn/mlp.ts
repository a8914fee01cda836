/** MLPs: two-layer with an activation (CLIP, SAM2) and the gated SwiGLU of Qwen. */
import * as tf from '@tensorflow/tfjs-core';
import { activation } from './activations.ts';
import { Linear } from './layers.ts';
import { Module } from './module.ts';

/** fc1 -> act -> fc2, with the checkpoint's own layer names (e.g. ['c_fc', 'c_proj'], ['fc1', 'fc2']). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(parent: Module | null, prefix: string, dim: number, hidden: number, opts: { act: string; names?: [string, string]; bias?: boolean; out?: number }) {
    super(parent, prefix);
    const [n1, n2] = opts.names ?? ['fc1', 'fc2'];
    this.fc1 = new Linear(this, n1, dim, hidden, { bias: opts.bias });
    this.fc2 = new Linear(this, n2, hidden, opts.out ?? dim, { bias: opts.bias });
    this.act = activation(opts.act);
  }

  /** x [..., dim] -> [..., out] */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(this.act(this.fc1.forward(x))));
  }
}

/** down(act(gate(x)) * up(x)): the Qwen2 / Qwen2.5-VL MLP. */
export class GatedMlp extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(parent: Module | null, prefix: string, dim: number, hidden: number, opts: { act?: string; bias?: boolean } = {}) {
    super(parent, prefix);
    this.gate_proj = new Linear(this, 'gate_proj', dim, hidden, { bias: opts.bias ?? false });
    this.up_proj = new Linear(this, 'up_proj', dim, hidden, { bias: opts.bias ?? false });
    this.down_proj = new Linear(this, 'down_proj', hidden, dim, { bias: opts.bias ?? false });
    this.act = activation(opts.act ?? 'silu');
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.down_proj.forward(tf.mul(this.act(this.gate_proj.forward(x)), this.up_proj.forward(x))));
  }
}
