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

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

export interface PredictOptions {
  /** [x1, y1, x2, y2] in original pixels */
  box?: readonly number[] | null;
  /** [[x, y], ...] in original pixels */
  points?: readonly (readonly number[])[] | null;
  /** 1 foreground, 0 background, one per point */
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

/** ToTensor + Resize((S, S), antialias) + Normalize: [1, 3, S, S] */
export function sam2Preprocess(img: ImageU8, size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const { width: w, height: h, data } = img;
    const chw = new Float32Array(3 * w * h);
    for (let c = 0; c < 3; c++) for (let i = 0; i < w * h; i++) chw[c * w * h + i] = data[i * img.channels + c] / 255;
    const x = interpolate(tf.tensor4d(chw, [1, 3, h, w]), size, size, 'bilinear-aa');
    return tf.div(tf.sub(x, tf.tensor4d(IMAGENET_MEAN, [1, 3, 1, 1])), tf.tensor4d(IMAGENET_STD, [1, 3, 1, 1])) as tf.Tensor4D;
  });
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
    const inside = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && x >= 0 && y >= 0 && x <= W && y <= H;
    if (hasBox) {
      const b = o.box!;
      if (b.length !== 4 || !inside(b[0], b[1]) || !inside(b[2], b[3])) throw new Error(`sam2 predictor: box ${JSON.stringify(b)} lies outside the ${W}x${H} image`);
    }
    if (hasPts) {
      for (const p of o.points!) if (p.length !== 2 || !inside(p[0], p[1])) throw new Error(`sam2 predictor: point ${JSON.stringify(p)} lies outside the ${W}x${H} image`);
      if (!o.labels || o.labels.length !== o.points!.length) throw new Error(`sam2 predictor: ${o.points!.length} points need as many labels`);
    }
    const multimask = o.multimask ?? true;
    const sx = S / W;
    const sy = S / H;
    let result: Prediction | null = null;
    tf.tidy(() => {
      const boxes = hasBox ? tf.tensor2d([[o.box![0] * sx, o.box![1] * sy, o.box![2] * sx, o.box![3] * sy]]) : null;
      const coords = hasPts ? tf.tensor3d([o.points!.map(p => [p[0] * sx, p[1] * sy])]) : null;
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
