/**
 * SAM's prompt encoder: random Fourier features of point coordinates (labels -1 padding,
 * 0 negative, 1 positive, 2/3 box corners), the dense positional encoding of the image grid,
 * and the no-mask dense embedding. Names follow `sam_prompt_encoder.*`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module } from '../../nn/module.ts';

export class PromptEncoder extends Module {
  readonly gaussian: tf.Variable; // [2, C/2]
  readonly pointEmbeddings: tf.Variable[]; // 4 x [1, C]
  readonly notAPoint: tf.Variable; // [1, C]
  readonly noMask: tf.Variable; // [1, C]
  readonly maskDownscaling: tf.Variable[];
  readonly embedDim: number;
  readonly imageSize: number;
  readonly gridSize: number;

  constructor(parent: Module | null, prefix: string, embedDim: number, gridSize: number, imageSize: number, maskInChans = 16) {
    super(parent, prefix);
    this.embedDim = embedDim;
    this.gridSize = gridSize;
    this.imageSize = imageSize;
    this.gaussian = this.param('pe_layer.positional_encoding_gaussian_matrix', [2, embedDim / 2], { normal: 1 });
    this.pointEmbeddings = [0, 1, 2, 3].map(i => this.param(`point_embeddings.${i}.weight`, [1, embedDim], { normal: 1 }));
    this.notAPoint = this.param('not_a_point_embed.weight', [1, embedDim], { normal: 1 });
    this.noMask = this.param('no_mask_embed.weight', [1, embedDim], { normal: 1 });
    // the mask-input branch (unused by box/point prompts) is kept so checkpoints load strictly
    const q = maskInChans / 4;
    this.maskDownscaling = [
      this.param('mask_downscaling.0.weight', [q, 1, 2, 2], { normal: 0.02 }), this.param('mask_downscaling.0.bias', [q]),
      this.param('mask_downscaling.1.weight', [q], 'ones'), this.param('mask_downscaling.1.bias', [q]),
      this.param('mask_downscaling.3.weight', [maskInChans, q, 2, 2], { normal: 0.02 }), this.param('mask_downscaling.3.bias', [maskInChans]),
      this.param('mask_downscaling.4.weight', [maskInChans], 'ones'), this.param('mask_downscaling.4.bias', [maskInChans]),
      this.param('mask_downscaling.6.weight', [embedDim, maskInChans, 1, 1], { normal: 0.02 }), this.param('mask_downscaling.6.bias', [embedDim]),
    ];
  }

  /** coords in [0, 1] [..., 2] -> [..., C]: sin/cos of 2π (2c - 1) G */
  private peEncoding(coords: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = coords.shape.slice(0, -1);
      const c = tf.sub(tf.mul(coords, 2), 1).reshape([-1, 2]);
      const p = tf.mul(tf.matMul(c as tf.Tensor2D, this.gaussian as tf.Tensor2D), 2 * Math.PI);
      return tf.concat([tf.sin(p), tf.cos(p)], -1).reshape([...shape, this.embedDim]);
    });
  }

  /** the dense positional encoding [1, C, g, g] of the image-embedding grid */
  densePe(): tf.Tensor4D {
    return tf.tidy(() => {
      const g = this.gridSize;
      const xy = new Float32Array(g * g * 2);
      for (let y = 0; y < g; y++) for (let x = 0; x < g; x++) {
        xy[(y * g + x) * 2] = (x + 0.5) / g;
        xy[(y * g + x) * 2 + 1] = (y + 0.5) / g;
      }
      const pe = this.peEncoding(tf.tensor3d(xy, [g, g, 2])); // [g, g, C]
      return tf.transpose(pe, [2, 0, 1]).expandDims(0) as tf.Tensor4D;
    });
  }

  /**
   * Sparse embeddings [B, N(+1), C] of points in the S x S input frame (a box given as its two
   * corners with labels 2 and 3), padded with one "not a point" when `pad`; dense [B, C, g, g].
   */
  forward(coords: tf.Tensor3D, labels: Int32Array, pad: boolean): { sparse: tf.Tensor3D; dense: tf.Tensor4D } {
    return tf.tidy(() => {
      const [b, n] = coords.shape;
      let pts = tf.add(coords, 0.5);
      let lab = labels;
      let m = n;
      if (pad) {
        pts = tf.concat([pts, tf.zeros([b, 1, 2])], 1);
        lab = new Int32Array(b * (n + 1));
        for (let i = 0; i < b; i++) {
          lab.set(labels.subarray(i * n, (i + 1) * n), i * (n + 1));
          lab[i * (n + 1) + n] = -1;
        }
        m = n + 1;
      }
      for (const l of lab) if (l < -1 || l > 3) throw new Error(`sam2 prompt: point label ${l} is not one of -1, 0, 1, 2, 3`);
      const pe = this.peEncoding(tf.div(pts, this.imageSize)); // [B, M, C]
      const labT = tf.tensor3d(lab, [b, m, 1], 'int32');
      const table = tf.concat([this.pointEmbeddings[0], this.pointEmbeddings[1], this.pointEmbeddings[2], this.pointEmbeddings[3]], 0); // [4, C]
      const idx = tf.tensor1d(Int32Array.from(lab, l => Math.max(l, 0)), 'int32');
      const add = tf.gather(table, idx).reshape([b, m, this.embedDim]);
      const isPad = tf.equal(labT, -1);
      const sparse = tf.where(tf.broadcastTo(isPad, [b, m, this.embedDim]), tf.broadcastTo(this.notAPoint.reshape([1, 1, this.embedDim]), [b, m, this.embedDim]), tf.add(pe, add));
      const g = this.gridSize;
      const dense = tf.broadcastTo(this.noMask.reshape([1, this.embedDim, 1, 1]), [b, this.embedDim, g, g]) as tf.Tensor4D;
      return { sparse: sparse as tf.Tensor3D, dense };
    });
  }
}
