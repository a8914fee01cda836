/**
 * CLIP image preprocessing: resize the short side to R with Pillow's bicubic, center crop R x R,
 * RGB, scale to [0, 1], normalise with CLIP's mean/std. Two crop conventions exist:
 * torchvision's CenterCrop (OpenAI's _transform: top = round((h - R) / 2), Python rounding) and
 * Hugging Face's CLIPImageProcessor (top = (h - R) // 2), which the DPAD reward code uses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { crop, resize, type ImageU8 } from '../../io/resample.ts';
import { pyRound } from './text.ts';

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

export type CropConvention = 'openai' | 'hf';


/** The R x R uint8 crop the model sees. */
export function clipResizeCrop(img: ImageU8, resolution: number, convention: CropConvention = 'openai'): ImageU8 {
  if (img.width < 1 || img.height < 1) throw new Error(`clip preprocess: empty image ${img.width}x${img.height}`);
  const { width: w, height: h } = img;
  let ow: number;
  let oh: number;
  // short side -> R, long side = int(R * long / short), as both torchvision and HF compute it
  if (w <= h) { ow = resolution; oh = Math.trunc((resolution * h) / w); }
  else { oh = resolution; ow = Math.trunc((resolution * w) / h); }
  const r = resize(img, ow, oh, 'bicubic');
  const top = convention === 'openai' ? pyRound((oh - resolution) / 2) : Math.floor((oh - resolution) / 2);
  const left = convention === 'openai' ? pyRound((ow - resolution) / 2) : Math.floor((ow - resolution) / 2);
  return crop(r, left, top, left + resolution, top + resolution);
}

/**
 * uint8 HWC -> normalised float32 CHW values, in float32 steps as the references compute them:
 * 'openai' (torchvision ToTensor + Normalize) x / 255 in float32; 'hf' (CLIPImageProcessor
 * rescale + normalize) x * (1/255) in float64 cast to float32; then (v - mean) / std in float32.
 */
export function normalizeChw(img: ImageU8, mean = CLIP_MEAN, std = CLIP_STD, convention: CropConvention = 'openai'): Float32Array {
  const { width: w, height: h, data } = img;
  if (img.channels !== 3) throw new Error(`clip preprocess: expected an RGB image, got ${img.channels} channels`);
  const out = new Float32Array(3 * w * h);
  const f = Math.fround;
  const inv = 1 / 255;
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]);
    const s = f(std[c]);
    for (let i = 0; i < w * h; i++) {
      const x = data[i * 3 + c];
      const v = convention === 'hf' ? f(x * inv) : f(x / 255);
      out[c * w * h + i] = f(f(v - m) / s);
    }
  }
  return out;
}

/** One image -> pixel_values [1, 3, R, R] */
export function clipPreprocess(img: ImageU8, resolution = 224, convention: CropConvention = 'openai'): tf.Tensor4D {
  const c = clipResizeCrop(img, resolution, convention);
  return tf.tensor4d(normalizeChw(c, CLIP_MEAN, CLIP_STD, convention), [1, 3, resolution, resolution]);
}

/** Several images -> [N, 3, R, R] */
export function clipPreprocessBatch(imgs: ImageU8[], resolution = 224, convention: CropConvention = 'openai'): tf.Tensor4D {
  const per = 3 * resolution * resolution;
  const all = new Float32Array(imgs.length * per);
  imgs.forEach((im, i) => all.set(normalizeChw(clipResizeCrop(im, resolution, convention), CLIP_MEAN, CLIP_STD, convention), i * per));
  return tf.tensor4d(all, [imgs.length, 3, resolution, resolution]);
}
