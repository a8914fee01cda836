/**
 * SAM2ImagePredictor for tfjs: setImage computes and caches the image features once; predict
 * maps prompts from original pixels into the model's S x S frame, decodes, upsamples the
 * low-resolution logits bilinearly to the original size and thresholds them at 0.
 * Preprocessing as SAM2Transforms: ToTensor, Resize((S, S)) bilinear with antialias, ImageNet mean/std.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageU8 } from '../../io/resample.ts';
import { interpolate } from '../../nn/interpolate.ts';
import type { ImageFeatures, Sam2Image } from './model.ts';
import { sam2Preprocess } from './preprocess.ts';

export { IMAGENET_MEAN, IMAGENET_STD, sam2Preprocess } from './preprocess.ts';

export interface PredictOptions {
  /** [x1, y1, x2, y2] in original pixels (may lie outside the image, as in the official predictor) */
  box?: readonly number[] | null;
  /** [[x, y], ...] in original pixels (may lie outside the image) */
  points?: readonly (readonly number[])[] | null;
  /** 1 foreground, 0 background (any label the prompt encoder knows: -1 padding, 0..3), one per point */
  labels?: readonly number[] | null;
  multimask?: boolean;
}

export interface Prediction {
  /** M binary masks at the original size (1 = inside) */
  masks: Uint8Array[];
  scores: number[];
  /** [M, S/4, S/4] logits, clamped to [-32, 32] */
  lowResLogits: Float32Array;
  lowResSize: number;
  width: number;
  height: number;
}

/** SAM2Transforms.transform_coords with normalize=True: x / W * S, y / H * S (float32, as torch) */
export function toModelFrame(x: number, y: number, width: number, height: number, size: number): [number, number] {
  const f = Math.fround;
  return [f(f(f(x) / width) * size), f(f(f(y) / height) * size)];
}

export class Sam2Predictor {
  readonly model: Sam2Image;
  private features: ImageFeatures | null = null;
  private size: { width: number; height: number } | null = null;

  constructor(model: Sam2Image) {
    this.model = model;
  }

  /** Encode an image once; later predict calls reuse the features. */
  setImage(img: ImageU8): void {
    if (img.width < 1 || img.height < 1) throw new Error(`sam2 predictor: empty image ${img.width}x${img.height}`);
    this.reset();
    const px = sam2Preprocess(img, this.model.config.image_size);
    try {
      this.features = this.model.encodeImage(px);
    } finally {
      px.dispose();
    }
    this.size = { width: img.width, height: img.height };
  }

  get imageSet(): boolean {
    return this.features !== null;
  }

  predict(o: PredictOptions): Prediction {
    if (!this.features || !this.size) throw new Error('sam2 predictor: call setImage before predict');
    const { width: W, height: H } = this.size;
    const S = this.model.config.image_size;
    const hasBox = o.box != null;
    const hasPts = o.points != null && o.points.length > 0;
    if (!hasBox && !hasPts) throw new Error('sam2 predictor: no prompt: give a box, points, or both');
    // as SAM2ImagePredictor._prep_prompts: coordinates are only normalised by the original size, never
    // checked against it, so prompts beyond the borders (negative, > W or > H) are encoded as given
    const finite = (v: readonly number[]) => v.every(Number.isFinite);
    if (hasBox) {
      const b = o.box!;
      if (b.length !== 4 || !finite(b)) throw new Error(`sam2 predictor: box ${JSON.stringify(b)} must be 4 finite numbers [x1, y1, x2, y2]`);
    }
    if (hasPts) {
      for (const p of o.points!) if (p.length !== 2 || !finite(p)) throw new Error(`sam2 predictor: point ${JSON.stringify(p)} must be 2 finite numbers [x, y]`);
      if (!o.labels || o.labels.length !== o.points!.length) throw new Error(`sam2 predictor: ${o.points!.length} points need as many labels`);
      for (const l of o.labels) if (!Number.isInteger(l) || l < -1 || l > 3) throw new Error(`sam2 predictor: point label ${l} is not one of -1, 0, 1, 2, 3`);
    }
    const multimask = o.multimask ?? true;
    const frame = (x: number, y: number) => toModelFrame(x, y, W, H, S);
    let result: Prediction | null = null;
    tf.tidy(() => {
      const boxes = hasBox ? tf.tensor2d([[...frame(o.box![0], o.box![1]), ...frame(o.box![2], o.box![3])]]) : null;
      const coords = hasPts ? tf.tensor3d([o.points!.map(p => frame(p[0], p[1]))]) : null;
      const labels = hasPts ? Int32Array.from(o.labels!) : null;
      const out = this.model.decode(this.features!, { boxes, pointCoords: coords, pointLabels: labels }, multimask);
      const [, m, lh] = out.lowResMasks.shape;
      const up = interpolate(out.lowResMasks, H, W, 'bilinear');
      const bin = tf.greater(up, this.model.config.sam.mask_threshold).cast('int32').dataSync();
      const masks: Uint8Array[] = [];
      for (let k = 0; k < m; k++) masks.push(Uint8Array.from(bin.subarray(k * H * W, (k + 1) * H * W)));
      result = {
        masks,
        scores: Array.from(out.iouPredictions.dataSync()),
        lowResLogits: Float32Array.from(tf.clipByValue(out.lowResMasks, -32, 32).dataSync()),
        lowResSize: lh,
        width: W,
        height: H,
      };
    });
    return result!;
  }

  reset(): void {
    if (this.features) tf.dispose([this.features.imageEmbed, this.features.highRes0, this.features.highRes1]);
    this.features = null;
    this.size = null;
  }

  dispose(): void {
    this.reset();
  }
}
