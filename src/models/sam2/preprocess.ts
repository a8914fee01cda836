/**
 * SAM2Transforms as SAM2ImagePredictor.set_image applies it: ToTensor (HWC uint8 -> CHW / 255),
 * Resize((S, S)) bilinear with align_corners=False and antialias=True (torch's antialiased
 * bilinear: a triangle filter whose support widens by the downscale factor, weights normalised per
 * output pixel; plain triangle taps when upscaling), then Normalize with the ImageNet mean / std.
 * No aspect ratio is kept and nothing is padded.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageU8 } from '../../io/resample.ts';
import { interpolate } from '../../nn/interpolate.ts';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** image [H, W, C>=3] uint8 -> pixel_values [1, 3, S, S] */
export function sam2Preprocess(img: ImageU8, size: number): tf.Tensor4D {
  const { width: w, height: h, data, channels } = img;
  if (!Number.isInteger(size) || size < 1) throw new Error(`sam2 preprocess: image_size must be a positive integer, got ${size}`);
  if (w < 1 || h < 1) throw new Error(`sam2 preprocess: empty image ${w}x${h}`);
  if (channels < 3) throw new Error(`sam2 preprocess: the image has ${channels} channel(s); SAM2 takes RGB`);
  if (data.length !== w * h * channels) throw new Error(`sam2 preprocess: ${data.length} bytes for a ${w}x${h}x${channels} image`);
  return tf.tidy(() => {
    const chw = new Float32Array(3 * w * h);
    for (let c = 0; c < 3; c++) for (let i = 0; i < w * h; i++) chw[c * w * h + i] = data[i * channels + c] / 255;
    const x = interpolate(tf.tensor4d(chw, [1, 3, h, w]), size, size, 'bilinear-aa');
    return tf.div(tf.sub(x, tf.tensor4d(IMAGENET_MEAN, [1, 3, 1, 1])), tf.tensor4d(IMAGENET_STD, [1, 3, 1, 1])) as tf.Tensor4D;
  });
}
