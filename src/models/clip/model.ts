/**
 * CLIP (openai/CLIP clip/model.py): a ViT image tower and a causal text transformer projected
 * into one embedding space. Parameter names are OpenAI's state-dict names; the HF layout is
 * mapped onto them in weights.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { quickGelu } from '../../nn/activations.ts';
import { MASK_VALUE, scaledDotProductAttention } from '../../nn/attention.ts';
import { LayerNorm, Linear, conv2dNchw, linear } from '../../nn/layers.ts';
import { Module } from '../../nn/module.ts';
import type { ClipConfig } from './config.ts';

/** nn.MultiheadAttention with its fused in_proj, as CLIP's checkpoints store it. */
class FusedAttention extends Module {
  readonly in_proj_weight: tf.Variable; // held [W, 3W]; checkpoint [3W, W]
  readonly in_proj_bias: tf.Variable; // [3W]
  readonly out_proj: Linear;
  readonly heads: number;

  constructor(parent: Module, prefix: string, width: number, heads: number) {
    super(parent, prefix);
    if (width % heads) throw new Error(`${this.prefix}: width ${width} is not divisible by ${heads} heads`);
    this.heads = heads;
    const bound = Math.sqrt(6 / (4 * width));
    this.in_proj_weight = this.param('in_proj_weight', [3 * width, width], { uniform: bound }, { transposed: true });
    this.in_proj_bias = this.param('in_proj_bias', [3 * width], 'zeros');
    this.out_proj = new Linear(this, 'out_proj', width, width);
  }

  /** x [B, L, W] -> [B, L, W] */
  forward(x: tf.Tensor3D, mask: tf.Tensor | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, l, w] = x.shape;
      const d = w / this.heads;
      const qkv = linear(x, this.in_proj_weight, this.in_proj_bias); // [B, L, 3W]
      const heads = (t: tf.Tensor) => tf.transpose(t.reshape([b, l, this.heads, d]), [0, 2, 1, 3]) as tf.Tensor4D;
      const [q, k, v] = tf.split(qkv, 3, 2).map(heads);
      const o = scaledDotProductAttention(q, k, v, { mask });
      return this.out_proj.forward(tf.transpose(o, [0, 2, 1, 3]).reshape([b, l, w])) as tf.Tensor3D;
    });
  }
}

/** Pre-LN residual block: x + attn(ln_1 x); x + mlp(ln_2 x), QuickGELU MLP (c_fc, c_proj). */
class ResidualAttentionBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: FusedAttention;
  readonly ln_2: LayerNorm;
  readonly c_fc: Linear;
  readonly c_proj: Linear;

  constructor(parent: Module, prefix: string, width: number, heads: number, mlp: number, eps: number) {
    super(parent, prefix);
    this.ln_1 = new LayerNorm(this, 'ln_1', width, { eps });
    this.attn = new FusedAttention(this, 'attn', width, heads);
    this.ln_2 = new LayerNorm(this, 'ln_2', width, { eps });
    this.c_fc = new Linear(this, 'mlp.c_fc', width, mlp);
    this.c_proj = new Linear(this, 'mlp.c_proj', mlp, width);
  }

  forward(x: tf.Tensor3D, mask: tf.Tensor | null): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.ln_1.forward(x) as tf.Tensor3D, mask)) as tf.Tensor3D;
      return tf.add(h, this.c_proj.forward(quickGelu(this.c_fc.forward(this.ln_2.forward(h))))) as tf.Tensor3D;
    });
  }
}

export class ClipVision extends Module {
  readonly conv1: tf.Variable; // [W, 3, P, P], no bias
  readonly class_embedding: tf.Variable; // [W]
  readonly positional_embedding: tf.Variable; // [(R/P)^2 + 1, W]
  readonly ln_pre: LayerNorm;
  readonly blocks: ResidualAttentionBlock[];
  readonly ln_post: LayerNorm;
  readonly proj: tf.Variable; // [W, embed]
  readonly config: ClipConfig;

  constructor(parent: Module | null, prefix: string, c: ClipConfig) {
    super(parent, prefix);
    this.config = c;
    const v = c.vision;
    if (v.image % v.patch) throw new Error(`clip: image size ${v.image} is not a multiple of patch ${v.patch}`);
    const scale = v.width ** -0.5;
    const grid = v.image / v.patch;
    this.conv1 = this.param('conv1.weight', [v.width, 3, v.patch, v.patch], { normal: 0.02 });
    this.class_embedding = this.param('class_embedding', [v.width], { normal: scale });
    this.positional_embedding = this.param('positional_embedding', [grid * grid + 1, v.width], { normal: scale });
    this.ln_pre = new LayerNorm(this, 'ln_pre', v.width, { eps: c.eps });
    this.blocks = Array.from({ length: v.layers }, (_, i) => new ResidualAttentionBlock(this, `transformer.resblocks.${i}`, v.width, v.heads, v.mlp, c.eps));
    this.ln_post = new LayerNorm(this, 'ln_post', v.width, { eps: c.eps });
    this.proj = this.param('proj', [v.width, c.embed], { normal: scale });
  }

  /** pixels [B, 3, R, R] (normalised) -> image embeds [B, embed] (projected, not normalised) */
  forward(pixels: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const v = this.config.vision;
      const [b, ch, h, w] = pixels.shape;
      if (ch !== 3 || h !== v.image || w !== v.image) throw new Error(`clip: pixel_values [${pixels.shape}] but the model takes [B, 3, ${v.image}, ${v.image}]`);
      const x = conv2dNchw(pixels, this.conv1, null, [v.patch, v.patch]); // [B, W, g, g]
      const g = v.image / v.patch;
      const tokens = tf.transpose(x.reshape([b, v.width, g * g]), [0, 2, 1]); // [B, g², W]
      const cls = tf.tile(this.class_embedding.reshape([1, 1, v.width]), [b, 1, 1]);
      let hdn = tf.add(tf.concat([cls, tokens], 1), this.positional_embedding) as tf.Tensor3D; // [B, g²+1, W]
      hdn = this.ln_pre.forward(hdn) as tf.Tensor3D;
      for (const blk of this.blocks) hdn = blk.forward(hdn, null);
      const pooled = this.ln_post.forward(hdn.slice([0, 0, 0], [b, 1, v.width]).reshape([b, v.width]));
      return tf.matMul(pooled as tf.Tensor2D, this.proj as tf.Tensor2D);
    });
  }
}

export class ClipText extends Module {
  readonly token_embedding: tf.Variable; // [V, W]
  readonly positional_embedding: tf.Variable; // [ctx, W]
  readonly blocks: ResidualAttentionBlock[];
  readonly ln_final: LayerNorm;
  readonly text_projection: tf.Variable; // [W, embed]
  readonly config: ClipConfig;

  constructor(parent: Module | null, prefix: string, c: ClipConfig) {
    super(parent, prefix);
    this.config = c;
    const t = c.text;
    this.token_embedding = this.param('token_embedding.weight', [t.vocab, t.width], { normal: 0.02 });
    this.positional_embedding = this.param('positional_embedding', [t.context, t.width], { normal: 0.01 });
    this.blocks = Array.from({ length: t.layers }, (_, i) => new ResidualAttentionBlock(this, `transformer.resblocks.${i}`, t.width, t.heads, t.mlp, c.eps));
    this.ln_final = new LayerNorm(this, 'ln_final', t.width, { eps: c.eps });
    this.text_projection = this.param('text_projection', [t.width, c.embed], { normal: t.width ** -0.5 });
  }

  /** input ids [B, L] (int32, L <= context) -> text embeds [B, embed], pooled at the end-of-text token (argmax id) */
  forward(ids: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const t = this.config.text;
      const [b, l] = ids.shape;
      if (l > t.context) throw new Error(`clip: ${l} tokens exceed the context length ${t.context}`);
      const ids32 = ids.dtype === 'int32' ? ids : ids.cast('int32');
      const maxId = tf.max(ids32).dataSync()[0];
      if (maxId >= t.vocab || tf.min(ids32).dataSync()[0] < 0) throw new Error(`clip: token id ${maxId} outside the vocabulary of ${t.vocab}`);
      let x = tf.add(tf.gather(this.token_embedding, ids32.reshape([-1])).reshape([b, l, t.width]), this.positional_embedding.slice([0, 0], [l, t.width])) as tf.Tensor3D;
      const mask = causalAdditive(l);
      for (const blk of this.blocks) x = blk.forward(x, mask);
      x = this.ln_final.forward(x) as tf.Tensor3D;
      const eot = tf.argMax(ids32, 1); // first occurrence of the highest id
      const rows = tf.add(tf.range(0, b * l, l, 'int32'), eot);
      const pooled = tf.gather(x.reshape([b * l, t.width]), rows);
      return tf.matMul(pooled as tf.Tensor2D, this.text_projection as tf.Tensor2D);
    });
  }
}

function causalAdditive(l: number): tf.Tensor4D {
  const m = new Float32Array(l * l);
  for (let i = 0; i < l; i++) for (let j = i + 1; j < l; j++) m[i * l + j] = MASK_VALUE;
  return tf.tensor4d(m, [1, 1, l, l]);
}

/** The full model: `visual.*` image tower, text tower at the root, and logit_scale. */
export class ClipModel extends Module {
  readonly visual: ClipVision;
  readonly text: ClipText;
  readonly logit_scale: tf.Variable; // [] or [1]
  readonly config: ClipConfig;

  constructor(config: ClipConfig) {
    super(null, '');
    this.config = config;
    this.visual = new ClipVision(this, 'visual', config);
    this.text = new ClipText(this, '', config);
    this.logit_scale = this.param('logit_scale', [], () => tf.scalar(Math.log(1 / 0.07)));
  }

  encodeImage(pixels: tf.Tensor4D): tf.Tensor2D {
    return this.visual.forward(pixels);
  }

  encodeText(ids: tf.Tensor2D): tf.Tensor2D {
    return this.text.forward(ids);
  }

  /** logits_per_image [B_img, B_txt] = exp(logit_scale) * cos(image, text) */
  logits(pixels: tf.Tensor4D, ids: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const img = l2normalize(this.encodeImage(pixels));
      const txt = l2normalize(this.encodeText(ids));
      return tf.mul(tf.exp(this.logit_scale.reshape([])), tf.matMul(img, txt, false, true)) as tf.Tensor2D;
    });
  }
}

/** x / ||x||_2 over the last axis */
export function l2normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.norm(x, 'euclidean', -1, true)) as tf.Tensor2D);
}
