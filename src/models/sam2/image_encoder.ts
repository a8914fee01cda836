/**
 * SAM2's image encoder (sam2/modeling/backbones/image_encoder.py): the Hiera trunk and the FPN
 * neck on top of it. Names follow the checkpoint (`image_encoder.trunk.*`, `image_encoder.neck.*`).
 * Tensors are NCHW between trunk and neck, as in the reference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { interpolate } from '../../nn/interpolate.ts';
import { Conv2d } from '../../nn/layers.ts';
import { Module } from '../../nn/module.ts';
import type { NeckConfig, Sam2Config } from './config.ts';
import { Hiera } from './hiera.ts';

/** FPN neck: 1x1 lateral convs, top-down x2 upsampling (fpn_interp_model) at fpn_top_down_levels, sum (or avg) fusion. */
export class FpnNeck extends Module {
  readonly convs: Conv2d[];
  readonly config: NeckConfig;

  constructor(parent: Module | null, prefix: string, c: NeckConfig) {
    super(parent, prefix);
    this.config = c;
    this.convs = c.backbone_channel_list.map((ch, i) => new Conv2d(this, `convs.${i}.conv`, ch, c.d_model, 1));
  }

  /** trunk features (highest resolution first) -> FPN features, same order, scalp levels dropped from the end */
  forward(xs: tf.Tensor4D[]): tf.Tensor4D[] {
    return tf.tidy(() => {
      const n = this.convs.length - 1;
      if (xs.length !== this.convs.length) throw new Error(`fpn: ${xs.length} trunk levels for ${this.convs.length} convs`);
      const out: tf.Tensor4D[] = new Array(xs.length);
      let prev: tf.Tensor4D | null = null;
      for (let i = n; i >= 0; i--) {
        const lateral = this.convs[n - i].forward(xs[i]);
        if (this.config.fpn_top_down_levels.includes(i) && prev) {
          const [, , h, w] = prev.shape;
          const sum = tf.add(lateral, interpolate(prev, h * 2, w * 2, this.config.fpn_interp_model, 2)) as tf.Tensor4D;
          prev = this.config.fuse_type === 'avg' ? (tf.div(sum, 2) as tf.Tensor4D) : sum;
        } else prev = lateral;
        out[i] = prev;
      }
      return this.config.scalp > 0 ? out.slice(0, out.length - this.config.scalp) : out;
    });
  }
}

/** trunk + neck; checks that the neck reads the trunk's channels */
export class ImageEncoder extends Module {
  readonly trunk: Hiera;
  readonly neck: FpnNeck;
  constructor(parent: Module, prefix: string, c: Sam2Config) {
    super(parent, prefix);
    this.trunk = new Hiera(this, 'trunk', c.trunk);
    this.neck = new FpnNeck(this, 'neck', c.neck);
    const tc = this.trunk.channels.join();
    if (tc !== c.neck.backbone_channel_list.join()) throw new Error(`sam2 config: trunk channels [${tc}] differ from neck.backbone_channel_list [${c.neck.backbone_channel_list}]`);
  }
}
