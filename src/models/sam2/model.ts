/**
 * The image path of SAM2 (sam2_base.py + the image predictor's feature preparation): image
 * encoder -> conv_s0 / conv_s1 on the two high-resolution FPN levels -> image embedding plus
 * no_mem_embed; prompt encoder and mask decoder on top. Pure tensors in and out.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module } from '../../nn/module.ts';
import type { Sam2Config } from './config.ts';
import { ImageEncoder } from './image_encoder.ts';
import { MaskDecoder, type DecodeOutput } from './mask_decoder.ts';
import { PromptEncoder } from './prompt_encoder.ts';

export interface ImageFeatures {
  /** [1, C, S/16, S/16] (no_mem_embed added) */
  imageEmbed: tf.Tensor4D;
  /** [1, C/8, S/4, S/4] (conv_s0; unused, and the raw FPN level, without use_high_res_features_in_sam) */
  highRes0: tf.Tensor4D;
  /** [1, C/4, S/8, S/8] (conv_s1; likewise) */
  highRes1: tf.Tensor4D;
}

export interface Prompts {
  /** [B, N, 2] in the S x S input frame */
  pointCoords?: tf.Tensor3D | null;
  /** [B * N] labels 0/1 (and -1 padding) */
  pointLabels?: Int32Array | null;
  /** [B, 4] x1, y1, x2, y2 in the S x S frame */
  boxes?: tf.Tensor2D | null;
}

export class Sam2Image extends Module {
  readonly image_encoder: ImageEncoder;
  readonly sam_prompt_encoder: PromptEncoder;
  readonly sam_mask_decoder: MaskDecoder;
  readonly no_mem_embed: tf.Variable; // [1, 1, C]
  readonly config: Sam2Config;

  constructor(config: Sam2Config) {
    super(null, '');
    this.config = config;
    const dim = config.neck.d_model;
    this.image_encoder = new ImageEncoder(this, 'image_encoder', config);
    this.sam_prompt_encoder = new PromptEncoder(this, 'sam_prompt_encoder', dim, config.image_size / 16, config.image_size, config.sam.mask_in_chans ?? 16);
    this.sam_mask_decoder = new MaskDecoder(this, 'sam_mask_decoder', dim, config.sam);
    this.no_mem_embed = this.param('no_mem_embed', [1, 1, dim], { normal: 0.02 });
  }

  /** pixels [1, 3, S, S] (normalised) -> the features the predictor caches */
  encodeImage(pixels: tf.Tensor4D): ImageFeatures {
    const S = this.config.image_size;
    if (pixels.shape[1] !== 3 || pixels.shape[2] !== S || pixels.shape[3] !== S) throw new Error(`sam2: pixel_values [${pixels.shape}] but the model takes [B, 3, ${S}, ${S}]`);
    return tf.tidy(() => {
      const fpn = this.image_encoder.neck.forward(this.image_encoder.trunk.forward(pixels));
      const d = this.sam_mask_decoder;
      const last = fpn[fpn.length - 1];
      const embed = this.config.sam.directly_add_no_mem_embed ? tf.add(last, this.no_mem_embed.reshape([1, -1, 1, 1])) : last;
      if (d.conv_s0 && d.conv_s1) return { imageEmbed: embed as tf.Tensor4D, highRes0: d.conv_s0.forward(fpn[0]), highRes1: d.conv_s1.forward(fpn[1]) };
      // no high-res path: the decoder ignores these (the levels before the last, or the embedding itself)
      const n = fpn.length;
      return { imageEmbed: embed as tf.Tensor4D, highRes0: n >= 3 ? fpn[n - 3] : last.clone(), highRes1: n >= 2 ? fpn[n - 2] : last.clone() };
    });
  }

  /**
   * Prompts -> masks. A box becomes two corner points with labels 2 and 3 placed before the other
   * points, and the prompt encoder pads with one "not a point", as SAM2ImagePredictor._predict does.
   */
  decode(features: ImageFeatures, prompts: Prompts, multimask: boolean | 'all'): DecodeOutput {
    return tf.tidy((): DecodeOutput & tf.TensorContainerObject => {
      const parts: tf.Tensor3D[] = [];
      const labs: number[][] = [];
      let b = 0;
      if (prompts.boxes) {
        b = prompts.boxes.shape[0];
        parts.push(prompts.boxes.reshape([b, 2, 2]) as tf.Tensor3D);
        for (let i = 0; i < b; i++) labs.push([2, 3]);
      }
      if (prompts.pointCoords) {
        const [pb, n] = prompts.pointCoords.shape;
        if (!prompts.pointLabels || prompts.pointLabels.length !== pb * n) throw new Error(`sam2: ${pb * n} points need as many labels (got ${prompts.pointLabels?.length ?? 0})`);
        if (b && pb !== b) throw new Error(`sam2: ${b} boxes but ${pb} point sets`);
        b = pb;
        parts.push(prompts.pointCoords);
        for (let i = 0; i < b; i++) {
          const row = Array.from(prompts.pointLabels.subarray(i * n, (i + 1) * n));
          if (labs[i]) labs[i].push(...row);
          else labs.push(row);
        }
      }
      if (!parts.length) throw new Error('sam2: no prompt: give a box, points, or both');
      const coords = (parts.length === 1 ? parts[0] : tf.concat(parts, 1)) as tf.Tensor3D;
      const labels = Int32Array.from(labs.flat());
      const { sparse, dense } = this.sam_prompt_encoder.forward(coords, labels, true);
      const pe = this.sam_prompt_encoder.densePe();
      return { ...this.sam_mask_decoder.forward(features.imageEmbed, pe, sparse, dense, [features.highRes0, features.highRes1], multimask) };
    });
  }
}
