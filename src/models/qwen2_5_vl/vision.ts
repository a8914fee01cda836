/**
 * The Qwen2.5-VL vision transformer: Conv3d patch embedding (as a matmul over flattened
 * C x T x P x P patches), 2-D rotary embeddings, window attention over the window-index
 * reordering with full attention at fullatt_block_indexes, RMSNorm, SwiGLU MLP with biases,
 * and the 2x2 patch merger. Parameter names are the checkpoint's (`visual.*`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { gelu } from '../../nn/activations.ts';
import { scaledDotProductAttention } from '../../nn/attention.ts';
import { Linear, RMSNorm, linear } from '../../nn/layers.ts';
import { GatedMlp } from '../../nn/mlp.ts';
import { Module } from '../../nn/module.ts';
import { applyRotary, inverseFrequenciesF32 } from '../../nn/rotary.ts';
import type { QwenVisionConfig } from './config.ts';

export type GridTHW = [number, number, number];

/** (h, w) position of every patch in merge-major order: [N, 2] (rot_pos_emb's pos_ids) */
export function visionPositions(grids: GridTHW[], merge: number): Int32Array {
  const out: number[] = [];
  for (const [t, h, w] of grids) {
    const one: number[] = [];
    for (let bh = 0; bh < h / merge; bh++) for (let bw = 0; bw < w / merge; bw++)
      for (let mh = 0; mh < merge; mh++) for (let mw = 0; mw < merge; mw++) one.push(bh * merge + mh, bw * merge + mw);
    for (let k = 0; k < t; k++) out.push(...one);
  }
  return Int32Array.from(out);
}

/**
 * get_window_index: the permutation of merged tokens that groups them by window, and the
 * cumulative patch counts of the windows (unique_consecutive applied).
 */
export function windowIndex(grids: GridTHW[], cfg: Pick<QwenVisionConfig, 'window_size' | 'spatial_merge_size' | 'patch_size'>): { index: Int32Array; cuSeqlens: number[] } {
  const merge = cfg.spatial_merge_size;
  const unit = merge * merge;
  const win = Math.floor(cfg.window_size / merge / cfg.patch_size);
  const index: number[] = [];
  const cu: number[] = [0];
  let base = 0;
  for (const [t, h, w] of grids) {
    const lh = h / merge;
    const lw = w / merge;
    const padH = win - (lh % win);
    const padW = win - (lw % win);
    const nh = (lh + padH) / win;
    const nw = (lw + padW) / win;
    for (let tt = 0; tt < t; tt++) {
      for (let wh = 0; wh < nh; wh++) for (let ww = 0; ww < nw; ww++) {
        let count = 0;
        for (let y = wh * win; y < (wh + 1) * win; y++) for (let x = ww * win; x < (ww + 1) * win; x++) {
          if (y < lh && x < lw) { index.push(base + tt * lh * lw + y * lw + x); count++; }
        }
        const next = cu[cu.length - 1] + count * unit;
        if (next !== cu[cu.length - 1]) cu.push(next);
      }
    }
    base += t * lh * lw;
  }
  return { index: Int32Array.from(index), cuSeqlens: cu };
}

class VisionAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly heads: number;

  constructor(parent: Module, prefix: string, dim: number, heads: number) {
    super(parent, prefix);
    this.heads = heads;
    this.qkv = new Linear(this, 'qkv', dim, dim * 3);
    this.proj = new Linear(this, 'proj', dim, dim);
  }

  /** x [N, D], cos/sin [N, 1, d], attention within each [cu[i], cu[i+1]) segment */
  forward(x: tf.Tensor2D, cos: tf.Tensor, sin: tf.Tensor, cu: number[]): tf.Tensor2D {
    return tf.tidy(() => {
      const [n, dim] = x.shape;
      const d = dim / this.heads;
      const qkv = this.qkv.forward(x); // [N, 3 * H * d], (3, H, d) contiguous
      let [q, k, v] = tf.split(qkv, 3, 1).map(t => t.reshape([n, this.heads, d])); // each [N, H, d]
      q = applyRotary(q, cos, sin);
      k = applyRotary(k, cos, sin);
      const outs: tf.Tensor[] = [];
      for (let i = 0; i + 1 < cu.length; i++) {
        const s = cu[i];
        const len = cu[i + 1] - s;
        const seg = (t: tf.Tensor) => tf.transpose(t.slice([s, 0, 0], [len, this.heads, d]), [1, 0, 2]).expandDims(0) as tf.Tensor4D;
        const o = scaledDotProductAttention(seg(q), seg(k), seg(v)); // [1, H, len, d]
        outs.push(tf.transpose(o.squeeze([0]), [1, 0, 2]).reshape([len, dim]));
      }
      return this.proj.forward(outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor2D;
    });
  }
}

class VisionBlock extends Module {
  readonly norm1: RMSNorm;
  readonly norm2: RMSNorm;
  readonly attn: VisionAttention;
  readonly mlp: GatedMlp;

  constructor(parent: Module, prefix: string, c: QwenVisionConfig) {
    super(parent, prefix);
    this.norm1 = new RMSNorm(this, 'norm1', c.hidden_size, { eps: 1e-6 });
    this.norm2 = new RMSNorm(this, 'norm2', c.hidden_size, { eps: 1e-6 });
    this.attn = new VisionAttention(this, 'attn', c.hidden_size, c.num_heads);
    this.mlp = new GatedMlp(this, 'mlp', c.hidden_size, c.intermediate_size, { act: c.hidden_act, bias: true });
  }

  forward(x: tf.Tensor2D, cos: tf.Tensor, sin: tf.Tensor, cu: number[]): tf.Tensor2D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.norm1.forward(x) as tf.Tensor2D, cos, sin, cu)) as tf.Tensor2D;
      return tf.add(h, this.mlp.forward(this.norm2.forward(h))) as tf.Tensor2D;
    });
  }
}

class PatchMerger extends Module {
  readonly ln_q: RMSNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly hidden: number;

  constructor(parent: Module, prefix: string, dim: number, contextDim: number, merge: number) {
    super(parent, prefix);
    this.hidden = contextDim * merge * merge;
    this.ln_q = new RMSNorm(this, 'ln_q', contextDim, { eps: 1e-6 });
    this.fc1 = new Linear(this, 'mlp.0', this.hidden, this.hidden);
    this.fc2 = new Linear(this, 'mlp.2', this.hidden, dim);
  }

  /** [N, C] -> [N / merge², dim] */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.fc2.forward(gelu(this.fc1.forward(this.ln_q.forward(x).reshape([-1, this.hidden])))) as tf.Tensor2D);
  }
}

export class QwenVision extends Module {
  /** Conv3d kernel as a [embed, C*T*P*P] matrix (held transposed); checkpoints store it 5-D */
  readonly patch_embed: tf.Variable;
  readonly blocks: VisionBlock[];
  readonly merger: PatchMerger;
  readonly config: QwenVisionConfig;

  constructor(parent: Module | null, prefix: string, c: QwenVisionConfig) {
    super(parent, prefix);
    this.config = c;
    const patchDim = c.in_chans * c.temporal_patch_size * c.patch_size * c.patch_size;
    this.patch_embed = this.param('patch_embed.proj.weight', [c.hidden_size, patchDim], { normal: 0.02 }, { transposed: true });
    this.blocks = Array.from({ length: c.depth }, (_, i) => new VisionBlock(this, `blocks.${i}`, c));
    this.merger = new PatchMerger(this, 'merger', c.out_hidden_size, c.hidden_size, c.spatial_merge_size);
  }

  /** pixel_values [N, C*T*P*P] (processor order), grids [[t, h, w], ...] -> image embeds [N / merge², out_hidden] */
  forward(pixels: tf.Tensor2D, grids: GridTHW[]): tf.Tensor2D {
    const c = this.config;
    const unit = c.spatial_merge_size ** 2;
    const n = grids.reduce((s, [t, h, w]) => s + t * h * w, 0);
    if (pixels.shape[0] !== n) throw new Error(`qwen vision: pixel_values has ${pixels.shape[0]} patches but image_grid_thw implies ${n}`);
    for (const [, h, w] of grids) if (h % c.spatial_merge_size || w % c.spatial_merge_size) throw new Error(`qwen vision: grid ${h}x${w} is not a multiple of the merge size`);
    const { index, cuSeqlens } = windowIndex(grids, c);
    const full: number[] = [0];
    for (const [t, h, w] of grids) for (let k = 0; k < t; k++) full.push(full[full.length - 1] + h * w);
    // rotary angles per patch: [N, headDim/2] = (h freqs, w freqs)
    const headDim = c.hidden_size / c.num_heads;
    const inv = inverseFrequenciesF32(headDim / 2, 10000);
    const pos = visionPositions(grids, c.spatial_merge_size);
    const q = inv.length;
    // reorder patches by window (in units of merged tokens) before computing the tables
    const order = new Int32Array(n);
    for (let i = 0; i < index.length; i++) for (let u = 0; u < unit; u++) order[i * unit + u] = index[i] * unit + u;
    const ang = new Float32Array(n * headDim);
    for (let r = 0; r < n; r++) {
      const src = order[r];
      for (let a = 0; a < 2; a++) for (let i = 0; i < q; i++) {
        const v = Math.fround(pos[src * 2 + a] * inv[i]);
        ang[r * headDim + a * q + i] = v;
        ang[r * headDim + headDim / 2 + a * q + i] = v;
      }
    }
    return tf.tidy(() => {
      const angles = tf.tensor2d(ang, [n, headDim]);
      const cos = tf.cos(angles).reshape([n, 1, headDim]);
      const sin = tf.sin(angles).reshape([n, 1, headDim]);
      let x = linear(pixels, this.patch_embed, null) as tf.Tensor2D; // [N, C]
      x = tf.gather(x, tf.tensor1d(order, 'int32')) as tf.Tensor2D;
      this.blocks.forEach((blk, i) => {
        x = blk.forward(x, cos, sin, c.fullatt_block_indexes.includes(i) ? full : cuSeqlens);
      });
      const merged = this.merger.forward(x);
      const reverse = new Int32Array(index.length);
      index.forEach((v, i) => (reverse[v] = i));
      return tf.gather(merged, tf.tensor1d(reverse, 'int32')) as tf.Tensor2D;
    });
  }
}
