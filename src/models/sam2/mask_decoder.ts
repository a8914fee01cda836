/**
 * SAM2's mask decoder (`sam_mask_decoder.*`): output tokens (object score, IoU, 4 masks) through
 * the two-way transformer, transposed-conv upscaling fused with the high-resolution features,
 * hypernetwork MLPs, the IoU head (sigmoid), the object-score head and the dynamic multimask
 * selection by stability.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gelu } from '../../nn/activations.ts';
import { Conv2d, Linear, layerNorm2d } from '../../nn/layers.ts';
import { Module } from '../../nn/module.ts';
import type { SamHeadConfig } from './config.ts';
import { TwoWayTransformer } from './transformer.ts';

/** SAM's MLP: Linear layers `layers.i` with ReLU between them, optional sigmoid. */
class SamMlp extends Module {
  readonly layers: Linear[];
  readonly sigmoid: boolean;
  constructor(parent: Module, prefix: string, inDim: number, hidden: number, out: number, n: number, sigmoid = false) {
    super(parent, prefix);
    const dims = [inDim, ...new Array(n - 1).fill(hidden), out];
    this.layers = Array.from({ length: n }, (_, i) => new Linear(this, `layers.${i}`, dims[i], dims[i + 1]));
    this.sigmoid = sigmoid;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      this.layers.forEach((l, i) => { h = l.forward(h); if (i < this.layers.length - 1) h = tf.relu(h); });
      return this.sigmoid ? tf.sigmoid(h) : h;
    });
  }
}

/** ConvTranspose2d with kernel 2 and stride 2 as one matmul: x [B, Cin, h, w] -> [B, Cout, 2h, 2w]. */
class UpConv2x extends Module {
  readonly weight: tf.Variable; // [Cin, Cout, 2, 2]
  readonly bias: tf.Variable;
  constructor(parent: Module, prefix: string, cin: number, cout: number) {
    super(parent, prefix);
    const bound = 1 / Math.sqrt(cout * 4);
    this.weight = this.param('weight', [cin, cout, 2, 2], { uniform: bound });
    this.bias = this.param('bias', [cout], { uniform: bound });
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, cin, h, w] = x.shape;
      const cout = this.weight.shape[1] as number;
      const rows = tf.transpose(x, [0, 2, 3, 1]).reshape([b * h * w, cin]);
      const y = tf.matMul(rows as tf.Tensor2D, this.weight.reshape([cin, cout * 4]) as tf.Tensor2D).reshape([b, h, w, cout, 2, 2]);
      const out = tf.transpose(y, [0, 3, 1, 4, 2, 5]).reshape([b, cout, 2 * h, 2 * w]);
      return tf.add(out, this.bias.reshape([1, cout, 1, 1])) as tf.Tensor4D;
    });
  }
}

export interface DecodeOutput {
  /** [B, M, 4h, 4w] mask logits (M = 3 multimask, 4 with 'all' (every mask token, for training), else 1) */
  lowResMasks: tf.Tensor4D;
  /** [B, M] */
  iouPredictions: tf.Tensor2D;
  /** [B, 1] */
  objectScoreLogits: tf.Tensor2D;
}

export class MaskDecoder extends Module {
  readonly transformer: TwoWayTransformer;
  readonly iou_token: tf.Variable;
  readonly mask_tokens: tf.Variable;
  readonly obj_score_token: tf.Variable | null;
  readonly up1: UpConv2x;
  readonly ln1w: tf.Variable;
  readonly ln1b: tf.Variable;
  readonly up2: UpConv2x;
  /** present with use_high_res_features_in_sam */
  readonly conv_s0: Conv2d | null;
  readonly conv_s1: Conv2d | null;
  readonly hyper: SamMlp[];
  readonly iou_prediction_head: SamMlp;
  readonly pred_obj_score_head: SamMlp | Linear | null;
  readonly cfg: SamHeadConfig;
  readonly numMaskTokens = 4;

  constructor(parent: Module | null, prefix: string, dim: number, c: SamHeadConfig) {
    super(parent, prefix);
    this.cfg = c;
    const t = c.two_way_transformer;
    this.transformer = new TwoWayTransformer(this, 'transformer', dim, t.depth, t.num_heads, t.mlp_dim);
    this.iou_token = this.param('iou_token.weight', [1, dim], { normal: 1 });
    this.mask_tokens = this.param('mask_tokens.weight', [this.numMaskTokens, dim], { normal: 1 });
    this.obj_score_token = c.pred_obj_scores ? this.param('obj_score_token.weight', [1, dim], { normal: 1 }) : null;
    this.up1 = new UpConv2x(this, 'output_upscaling.0', dim, dim / 4);
    this.ln1w = this.param('output_upscaling.1.weight', [dim / 4], 'ones');
    this.ln1b = this.param('output_upscaling.1.bias', [dim / 4], 'zeros');
    this.up2 = new UpConv2x(this, 'output_upscaling.3', dim / 4, dim / 8);
    this.conv_s0 = c.use_high_res_features_in_sam ? new Conv2d(this, 'conv_s0', dim, dim / 8, 1) : null;
    this.conv_s1 = c.use_high_res_features_in_sam ? new Conv2d(this, 'conv_s1', dim, dim / 4, 1) : null;
    this.hyper = Array.from({ length: this.numMaskTokens }, (_, i) => new SamMlp(this, `output_hypernetworks_mlps.${i}`, dim, dim, dim / 8, 3));
    this.iou_prediction_head = new SamMlp(this, 'iou_prediction_head', dim, c.iou_head_hidden_dim ?? 256, this.numMaskTokens, 3, c.iou_prediction_use_sigmoid);
    this.pred_obj_score_head = !c.pred_obj_scores ? null : c.pred_obj_scores_mlp ? new SamMlp(this, 'pred_obj_score_head', dim, dim, 1, 3) : new Linear(this, 'pred_obj_score_head', dim, 1);
  }

  /**
   * image [1 or B, C, h, w] (repeated over the prompts), pe [1, C, h, w], sparse [B, N, C],
   * dense [B, C, h, w], highRes [feat_s0 [1, C/8, 4h, 4w], feat_s1 [1, C/4, 2h, 2w]].
   */
  forward(image: tf.Tensor4D, pe: tf.Tensor4D, sparse: tf.Tensor3D, dense: tf.Tensor4D, highRes: [tf.Tensor4D, tf.Tensor4D], multimask: boolean | 'all'): DecodeOutput {
    return tf.tidy(() => {
      const b = sparse.shape[0];
      const dim = sparse.shape[2];
      const rep = (t: tf.Tensor4D) => (t.shape[0] === b ? t : tf.tile(t, [b, 1, 1, 1])) as tf.Tensor4D;
      const parts = [this.iou_token, this.mask_tokens];
      if (this.obj_score_token) parts.unshift(this.obj_score_token);
      const out = tf.tile(tf.concat(parts, 0).expandDims(0), [b, 1, 1]);
      const tokens = tf.concat([out, sparse], 1) as tf.Tensor3D;
      const src = tf.add(rep(image), dense) as tf.Tensor4D;
      const [, c, h, w] = src.shape;
      const [hs, keys] = this.transformer.forward(src, rep(pe), tokens);
      const s = this.obj_score_token ? 1 : 0;
      const iouOut = hs.slice([0, s, 0], [b, 1, dim]).reshape([b, dim]);
      const maskOut = hs.slice([0, s + 1, 0], [b, this.numMaskTokens, dim]);
      const srcImg = tf.transpose(keys, [0, 2, 1]).reshape([b, c, h, w]) as tf.Tensor4D;
      // without high-res features: output_upscaling as one Sequential (dc1, ln, gelu, dc2, gelu)
      const hr = this.cfg.use_high_res_features_in_sam;
      const [s0, s1] = highRes;
      const u1 = this.up1.forward(srcImg);
      let up = gelu(layerNorm2d((hr ? tf.add(u1, rep(s1)) : u1) as tf.Tensor4D, this.ln1w, this.ln1b, 1e-6)) as tf.Tensor4D;
      const u2 = this.up2.forward(up);
      up = gelu(hr ? tf.add(u2, rep(s0)) : u2) as tf.Tensor4D;
      const hyper = tf.stack(this.hyper.map((m, i) => m.forward(maskOut.slice([0, i, 0], [b, 1, dim]).reshape([b, dim]))), 1); // [B, 4, C/8]
      const [, uc, uh, uw] = up.shape;
      const masks = tf.matMul(hyper, up.reshape([b, uc, uh * uw])).reshape([b, this.numMaskTokens, uh, uw]) as tf.Tensor4D;
      const iou = this.iou_prediction_head.forward(iouOut) as tf.Tensor2D;
      const obj = this.pred_obj_score_head ? (this.pred_obj_score_head.forward(hs.slice([0, 0, 0], [b, 1, dim]).reshape([b, dim])) as tf.Tensor2D) : tf.fill([b, 1], 10) as tf.Tensor2D;
      if (multimask === 'all') return { lowResMasks: masks, iouPredictions: iou, objectScoreLogits: obj };
      if (multimask) {
        return { lowResMasks: masks.slice([0, 1, 0, 0], [b, 3, uh, uw]), iouPredictions: iou.slice([0, 1], [b, 3]), objectScoreLogits: obj };
      }
      if (this.cfg.dynamic_multimask_via_stability) {
        const r = this.dynamicMultimask(masks, iou);
        return { ...r, objectScoreLogits: obj };
      }
      return { lowResMasks: masks.slice([0, 0, 0, 0], [b, 1, uh, uw]), iouPredictions: iou.slice([0, 0], [b, 1]), objectScoreLogits: obj };
    });
  }

  /** the single-mask output when it is stable, else the best of the three multimask outputs */
  private dynamicMultimask(masks: tf.Tensor4D, iou: tf.Tensor2D): { lowResMasks: tf.Tensor4D; iouPredictions: tf.Tensor2D } {
    return tf.tidy(() => {
      const [b, , h, w] = masks.shape;
      const delta = this.cfg.dynamic_multimask_stability_delta;
      const single = masks.slice([0, 0, 0, 0], [b, 1, h, w]).reshape([b, h * w]);
      const ai = tf.sum(tf.greater(single, delta).cast('float32'), -1);
      const au = tf.sum(tf.greater(single, -delta).cast('float32'), -1);
      const stability = tf.where(tf.greater(au, 0), tf.div(ai, tf.maximum(au, 1)), tf.onesLike(au));
      const stable = tf.greaterEqual(stability, this.cfg.dynamic_multimask_stability_thresh).dataSync();
      const multiIou = iou.slice([0, 1], [b, 3]);
      const best = tf.argMax(multiIou, -1).dataSync();
      const ms: tf.Tensor[] = [];
      const ss: tf.Tensor[] = [];
      for (let i = 0; i < b; i++) {
        const k = stable[i] ? 0 : 1 + best[i];
        ms.push(masks.slice([i, k, 0, 0], [1, 1, h, w]));
        ss.push(iou.slice([i, k], [1, 1]));
      }
      return { lowResMasks: tf.concat(ms, 0) as tf.Tensor4D, iouPredictions: tf.concat(ss, 0) as tf.Tensor2D };
    });
  }
}
