/**
 * SAM2's Hiera trunk (multi-scale blocks, q-pooling between stages, windowed and global
 * attention, window positional embedding over an interpolated background embedding); the FPN neck
 * and the encoder that holds both are in image_encoder.ts. Names follow the checkpoint
 * (`image_encoder.trunk.*`). Tensors are NHWC inside the trunk, NCHW at its outputs, as in the reference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { scaledDotProductAttention } from '../../nn/attention.ts';
import { CHUNK_ELEMENTS, mapRowChunks, rowsWithin } from '../../nn/chunk.ts';
import { interpolate } from '../../nn/interpolate.ts';
import { Conv2d, LayerNorm, Linear } from '../../nn/layers.ts';
import { Mlp } from '../../nn/mlp.ts';
import { Module } from '../../nn/module.ts';
import type { HieraConfig } from './config.ts';

/** [B, H, W, C] -> windows [B * nW, ws, ws, C], zero-padded to multiples of ws */
function windowPartition(x: tf.Tensor4D, ws: number): { windows: tf.Tensor4D; hp: number; wp: number } {
  const [b, h, w, c] = x.shape;
  const ph = (ws - (h % ws)) % ws;
  const pw = (ws - (w % ws)) % ws;
  const xp = ph || pw ? tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]]) : x;
  const hp = h + ph;
  const wp = w + pw;
  const windows = tf.transpose(xp.reshape([b, hp / ws, ws, wp / ws, ws, c]), [0, 1, 3, 2, 4, 5]).reshape([-1, ws, ws, c]) as tf.Tensor4D;
  return { windows, hp, wp };
}

function windowUnpartition(windows: tf.Tensor4D, ws: number, hp: number, wp: number, h: number, w: number): tf.Tensor4D {
  const c = windows.shape[3];
  const b = windows.shape[0] / ((hp * wp) / ws / ws);
  let x = tf.transpose(windows.reshape([b, hp / ws, wp / ws, ws, ws, c]), [0, 1, 3, 2, 4, 5]).reshape([b, hp, wp, c]) as tf.Tensor4D;
  if (hp > h || wp > w) x = x.slice([0, 0, 0, 0], [b, h, w, c]);
  return x;
}

const maxPool2 = (x: tf.Tensor4D) => tf.maxPool(x, 2, 2, 'valid');

class MultiScaleAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly heads: number;
  readonly qPool: boolean;

  constructor(parent: Module, prefix: string, dim: number, dimOut: number, heads: number, qPool: boolean) {
    super(parent, prefix);
    this.heads = heads;
    this.qPool = qPool;
    this.qkv = new Linear(this, 'qkv', dim, dimOut * 3);
    this.proj = new Linear(this, 'proj', dimOut, dimOut);
  }

  /** x [B, H, W, C] -> [B, H', W', dimOut] */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w] = x.shape;
      const qkv = this.qkv.forward(x).reshape([b, h * w, -1]); // [B, HW, 3 * heads * d], (3, heads, d) contiguous
      const d = (qkv.shape[2] as number) / 3 / this.heads;
      // a split on the last axis (tf.unstack is very slow on wasm)
      let [q, k, v] = tf.split(qkv, 3, 2).map(t => t.reshape([b, h * w, this.heads, d])); // [B, HW, heads, d]
      let ho = h;
      let wo = w;
      if (this.qPool) {
        const pooled = maxPool2(q.reshape([b, h, w, this.heads * d]) as tf.Tensor4D);
        [ho, wo] = [pooled.shape[1] as number, pooled.shape[2] as number];
        q = pooled.reshape([b, ho * wo, this.heads, d]);
      }
      const t = (z: tf.Tensor) => tf.transpose(z, [0, 2, 1, 3]) as tf.Tensor4D;
      const o = tf.transpose(scaledDotProductAttention(t(q), t(k), t(v)), [0, 2, 1, 3]).reshape([b, ho, wo, this.heads * d]);
      return this.proj.forward(o) as tf.Tensor4D;
    });
  }
}

class MultiScaleBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: MultiScaleAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly proj: Linear | null;
  readonly windowSize: number;
  readonly qStride: boolean;

  constructor(parent: Module, prefix: string, dim: number, dimOut: number, heads: number, windowSize: number, qStride: boolean) {
    super(parent, prefix);
    this.windowSize = windowSize;
    this.qStride = qStride;
    this.norm1 = new LayerNorm(this, 'norm1', dim, { eps: 1e-6 });
    this.attn = new MultiScaleAttention(this, 'attn', dim, dimOut, heads, qStride);
    this.norm2 = new LayerNorm(this, 'norm2', dimOut, { eps: 1e-6 });
    this.mlp = new Mlp(this, 'mlp', dimOut, dimOut * 4, { act: 'gelu', names: ['layers.0', 'layers.1'] });
    this.proj = dim !== dimOut ? new Linear(this, 'proj', dim, dimOut) : null;
  }

  /**
   * x [B, H, W, dim] -> [B, H', W', dimOut]. At 1024 px (hiera-large: 256 x 256 x 144 in stage 1)
   * the windows are attended a chunk of windows at a time and the MLP runs over chunks of tokens,
   * with each full-size intermediate freed as soon as it is used, so the live set stays a few
   * feature maps rather than every intermediate of the block (the wasm heap is 4 GiB).
   */
  forward(x: tf.Tensor4D, chunkElements = CHUNK_ELEMENTS): tf.Tensor4D {
    return tf.tidy(() => {
      let shortcut = x;
      let h = this.norm1.forward(x) as tf.Tensor4D;
      if (this.proj) {
        shortcut = this.proj.forward(h) as tf.Tensor4D;
        if (this.qStride) shortcut = maxPool2(shortcut);
      }
      let ws = this.windowSize;
      const [H, W] = [h.shape[1], h.shape[2]];
      let pad = { hp: H, wp: W };
      if (ws > 0) {
        const p = windowPartition(h, ws);
        h.dispose();
        h = p.windows;
        pad = { hp: p.hp, wp: p.wp };
      }
      // attention is per window (axis 0), so windows go a chunk at a time; q/k/v and the output
      // projection are the largest intermediates: ~6 x dimOut values per token
      const dimOut = this.attn.proj.outFeatures;
      const attended = mapRowChunks(h, rowsWithin(chunkElements, h.shape[1] * h.shape[2] * 6 * dimOut), w => this.attn.forward(w)) as tf.Tensor4D;
      h.dispose();
      h = attended;
      let [oh, ow] = [H, W];
      if (this.qStride) {
        ws = Math.floor(this.windowSize / 2);
        [oh, ow] = [shortcut.shape[1], shortcut.shape[2]];
        if (ws > 0) pad = { hp: oh + ((ws - (oh % ws)) % ws), wp: ow + ((ws - (ow % ws)) % ws) };
      }
      if (this.windowSize > 0) {
        const un = windowUnpartition(h, ws, pad.hp, pad.wp, oh, ow);
        h.dispose();
        h = un;
      }
      const y = tf.add(shortcut, h) as tf.Tensor4D;
      h.dispose();
      if (shortcut !== x) shortcut.dispose();
      // the MLP is per token: chunks of token rows bound its 4 x dimOut hidden activation
      const rows = y.reshape([-1, dimOut]);
      const out = mapRowChunks(rows, rowsWithin(chunkElements, 6 * dimOut), r => tf.add(r, this.mlp.forward(this.norm2.forward(r))));
      return out.reshape(y.shape) as tf.Tensor4D;
    });
  }
}

export class Hiera extends Module {
  readonly patch_embed: Conv2d;
  readonly pos_embed: tf.Variable; // [1, C, bh, bw]
  readonly pos_embed_window: tf.Variable; // [1, C, ws0, ws0]
  readonly blocks: MultiScaleBlock[];
  readonly stageEnds: number[];
  readonly channels: number[];
  /** the largest block intermediate (elements) materialised at once; results do not depend on it */
  chunkElements = CHUNK_ELEMENTS;

  constructor(parent: Module | null, prefix: string, c: HieraConfig) {
    super(parent, prefix);
    const qPool = c.q_pool ?? 3;
    const dimMul = c.dim_mul ?? 2;
    const headMul = c.head_mul ?? 2;
    let dim = c.embed_dim;
    let heads = c.num_heads;
    this.patch_embed = new Conv2d(this, 'patch_embed.proj', 3, dim, 7, { stride: 4, padding: 3 });
    this.pos_embed = this.param('pos_embed', [1, dim, ...c.window_pos_embed_bkg_spatial_size], { normal: 0.02 });
    this.pos_embed_window = this.param('pos_embed_window', [1, dim, c.window_spec[0], c.window_spec[0]], { normal: 0.02 });
    const depth = c.stages.reduce((a, b) => a + b, 0);
    this.stageEnds = c.stages.map((_, i) => c.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
    const qPoolBlocks = this.stageEnds.slice(0, -1).map(x => x + 1).slice(0, qPool);
    this.blocks = [];
    let stage = 1;
    for (let i = 0; i < depth; i++) {
      let dimOut = dim;
      // the first block of a stage still uses the previous stage's window size, as the reference does
      let ws = c.window_spec[stage - 1];
      if (c.global_att_blocks.includes(i)) ws = 0;
      if (this.stageEnds.includes(i - 1)) {
        dimOut = Math.trunc(dim * dimMul);
        heads = Math.trunc(heads * headMul);
        stage++;
      }
      this.blocks.push(new MultiScaleBlock(this, `blocks.${i}`, dim, dimOut, heads, ws, qPoolBlocks.includes(i)));
      dim = dimOut;
    }
    this.channels = [...this.stageEnds].reverse().map(i => this.blocks[i].attn.proj.outFeatures);
  }

  /** pixels [B, 3, S, S] -> features per stage, NCHW, highest resolution first */
  forward(pixels: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      const conv = this.patch_embed.forward(pixels); // [B, C, h, w]
      let x = tf.transpose(conv, [0, 2, 3, 1]) as tf.Tensor4D; // [B, h, w, C]
      conv.dispose();
      const [, h, w] = x.shape;
      const ws = this.pos_embed_window.shape[2] as number;
      if (h % ws || w % ws) throw new Error(`hiera: feature map ${h}x${w} is not a multiple of the window ${ws} (image size must be a multiple of ${4 * ws})`);
      const patches = x;
      x = tf.tidy(() => {
        const bg = interpolate(this.pos_embed as tf.Tensor4D, h, w, 'bicubic');
        const pe = tf.add(bg, tf.tile(this.pos_embed_window, [1, 1, h / ws, w / ws]));
        return tf.add(patches, tf.transpose(pe, [0, 2, 3, 1])) as tf.Tensor4D;
      });
      patches.dispose();
      const outs: tf.Tensor4D[] = [];
      this.blocks.forEach((blk, i) => {
        const next = blk.forward(x, this.chunkElements);
        x.dispose(); // block inputs are not kept to the end of the trunk (48 of them in hiera-large)
        x = next;
        if (this.stageEnds.includes(i)) outs.push(tf.transpose(x, [0, 3, 1, 2]) as tf.Tensor4D);
      });
      return outs;
    });
  }
}
