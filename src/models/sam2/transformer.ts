/** SAM's two-way transformer: tokens and image embeddings attend to each other (`sam_mask_decoder.transformer.*`). */
import * as tf from '@tensorflow/tfjs-core';
import { MultiHeadAttention } from '../../nn/attention.ts';
import { LayerNorm } from '../../nn/layers.ts';
import { Mlp } from '../../nn/mlp.ts';
import { Module } from '../../nn/module.ts';

const attention = (parent: Module, prefix: string, dim: number, heads: number, downsample: number) =>
  new MultiHeadAttention(parent, prefix, dim, { heads, innerDim: dim / downsample, names: { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'out_proj' } });

class TwoWayAttentionBlock extends Module {
  readonly self_attn: MultiHeadAttention;
  readonly norm1: LayerNorm;
  readonly cross_attn_token_to_image: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly norm3: LayerNorm;
  readonly norm4: LayerNorm;
  readonly cross_attn_image_to_token: MultiHeadAttention;
  readonly skipFirstPe: boolean;

  constructor(parent: Module, prefix: string, dim: number, heads: number, mlpDim: number, skipFirstPe: boolean) {
    super(parent, prefix);
    this.skipFirstPe = skipFirstPe;
    this.self_attn = attention(this, 'self_attn', dim, heads, 1);
    this.norm1 = new LayerNorm(this, 'norm1', dim);
    this.cross_attn_token_to_image = attention(this, 'cross_attn_token_to_image', dim, heads, 2);
    this.norm2 = new LayerNorm(this, 'norm2', dim);
    this.mlp = new Mlp(this, 'mlp', dim, mlpDim, { act: 'relu', names: ['layers.0', 'layers.1'] });
    this.norm3 = new LayerNorm(this, 'norm3', dim);
    this.norm4 = new LayerNorm(this, 'norm4', dim);
    this.cross_attn_image_to_token = attention(this, 'cross_attn_image_to_token', dim, heads, 2);
  }

  forward(queries: tf.Tensor3D, keys: tf.Tensor3D, queryPe: tf.Tensor3D, keyPe: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      let q3: tf.Tensor3D;
      if (this.skipFirstPe) q3 = this.self_attn.forward(queries, queries, queries);
      else {
        const q = tf.add(queries, queryPe) as tf.Tensor3D;
        q3 = tf.add(queries, this.self_attn.forward(q, q, queries)) as tf.Tensor3D;
      }
      let qs = this.norm1.forward(q3) as tf.Tensor3D;
      let k = tf.add(keys, keyPe) as tf.Tensor3D;
      qs = this.norm2.forward(tf.add(qs, this.cross_attn_token_to_image.forward(tf.add(qs, queryPe) as tf.Tensor3D, k, keys))) as tf.Tensor3D;
      qs = this.norm3.forward(tf.add(qs, this.mlp.forward(qs))) as tf.Tensor3D;
      k = tf.add(keys, keyPe) as tf.Tensor3D;
      const ks = this.norm4.forward(tf.add(keys, this.cross_attn_image_to_token.forward(k, tf.add(qs, queryPe) as tf.Tensor3D, qs))) as tf.Tensor3D;
      return [qs, ks];
    });
  }
}

export class TwoWayTransformer extends Module {
  readonly layers: TwoWayAttentionBlock[];
  readonly final_attn_token_to_image: MultiHeadAttention;
  readonly norm_final_attn: LayerNorm;

  constructor(parent: Module, prefix: string, dim: number, depth: number, heads: number, mlpDim: number) {
    super(parent, prefix);
    this.layers = Array.from({ length: depth }, (_, i) => new TwoWayAttentionBlock(this, `layers.${i}`, dim, heads, mlpDim, i === 0));
    this.final_attn_token_to_image = attention(this, 'final_attn_token_to_image', dim, heads, 2);
    this.norm_final_attn = new LayerNorm(this, 'norm_final_attn', dim);
  }

  /** image [B, C, h, w], pe [B, C, h, w], tokens [B, N, C] -> (tokens [B, N, C], image [B, hw, C]) */
  forward(image: tf.Tensor4D, pe: tf.Tensor4D, tokens: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      const [b, c, h, w] = image.shape;
      const flat = (t: tf.Tensor4D) => tf.transpose(t.reshape([b, c, h * w]), [0, 2, 1]) as tf.Tensor3D;
      let keys = flat(image);
      const keyPe = flat(pe);
      let queries = tokens;
      for (const layer of this.layers) [queries, keys] = layer.forward(queries, keys, tokens, keyPe);
      const attn = this.final_attn_token_to_image.forward(tf.add(queries, tokens) as tf.Tensor3D, tf.add(keys, keyPe) as tf.Tensor3D, keys);
      queries = this.norm_final_attn.forward(tf.add(queries, attn)) as tf.Tensor3D;
      return [queries, keys];
    });
  }
}
