/**
 * The Qwen2-VL image processor and prompt: smart_resize (factor 28, min/max pixels), Pillow
 * bicubic resize, rescale and CLIP normalisation, the frame repeated to temporal_patch_size and
 * patches flattened merge-major as (C, T, P, P); the chat template with the image pad expanded.
 */
import * as tf from '@tensorflow/tfjs-core';
import { pyRound } from '../../util/pycompat.ts';
import { resize, type ImageU8 } from '../../io/resample.ts';
import { CLIP_MEAN, CLIP_STD } from '../clip/preprocess.ts';
import type { QwenVisionConfig } from './config.ts';
import type { GridTHW } from './vision.ts';
import { DEFAULT_SYSTEM_PROMPT, expandImagePads, renderChat, type ChatMessage, type ChatOptions } from './chat.ts';

export const MIN_PIXELS = 3136;
export const MAX_PIXELS = 12845056;


/** smart_resize of the HF image processor: (height, width) divisible by factor, pixels within limits. */
export function smartResize(height: number, width: number, factor = 28, minPixels = MIN_PIXELS, maxPixels = MAX_PIXELS): [number, number] {
  if (height < factor || width < factor) throw new Error(`qwen processor: image ${width}x${height} is smaller than the ${factor}-pixel factor`);
  if (Math.max(height, width) / Math.min(height, width) > 200) throw new Error(`qwen processor: aspect ratio of ${width}x${height} exceeds 200`);
  let h = pyRound(height / factor) * factor;
  let w = pyRound(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  if (h < factor || w < factor) throw new Error(`qwen processor: ${width}x${height} cannot fit max_pixels=${maxPixels}`);
  return [h, w];
}

export interface ProcessedImage {
  /** [N, C*T*P*P] */
  pixelValues: tf.Tensor2D;
  grid: GridTHW;
  /** number of image pad tokens: N / merge² */
  tokens: number;
}

export function preprocessImage(img: ImageU8, vc: Pick<QwenVisionConfig, 'patch_size' | 'spatial_merge_size' | 'temporal_patch_size'>, opts: { minPixels?: number; maxPixels?: number } = {}): ProcessedImage {
  const p = vc.patch_size;
  const m = vc.spatial_merge_size;
  const tp = vc.temporal_patch_size;
  const [h, w] = smartResize(img.height, img.width, p * m, opts.minPixels ?? MIN_PIXELS, opts.maxPixels ?? MAX_PIXELS);
  const r = resize(img, w, h, 'bicubic');
  // rescale in float64 then float32 (numpy), normalise
  const plane = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let i = 0; i < h * w; i++) {
    const v = Math.fround(r.data[i * 3 + c] * (1 / 255));
    plane[c * h * w + i] = Math.fround((v - Math.fround(CLIP_MEAN[c])) / Math.fround(CLIP_STD[c]));
  }
  const gh = h / p;
  const gw = w / p;
  const dim = 3 * tp * p * p;
  const out = new Float32Array(gh * gw * dim);
  let row = 0;
  for (let bh = 0; bh < gh / m; bh++) for (let bw = 0; bw < gw / m; bw++) for (let mh = 0; mh < m; mh++) for (let mw = 0; mw < m; mw++) {
    const y0 = (bh * m + mh) * p;
    const x0 = (bw * m + mw) * p;
    let o = row * dim;
    for (let c = 0; c < 3; c++) for (let t = 0; t < tp; t++) for (let py = 0; py < p; py++) for (let px = 0; px < p; px++) {
      out[o++] = plane[c * h * w + (y0 + py) * w + x0 + px];
    }
    row++;
  }
  return { pixelValues: tf.tensor2d(out, [gh * gw, dim]), grid: [1, gh, gw], tokens: (gh * gw) / (m * m) };
}

export const SYSTEM_PROMPT = DEFAULT_SYSTEM_PROMPT;

/** The chat template text of one user turn with an image first, then the text, and the generation prompt. */
export function chatPrompt(userText: string, imageTokens: number | null, system = SYSTEM_PROMPT): string {
  const user: ChatMessage = { role: 'user', content: imageTokens === null ? [{ type: 'text', text: userText }] : [{ type: 'image' }, { type: 'text', text: userText }] };
  const text = renderChat([{ role: 'system', content: system }, user], { addGenerationPrompt: true });
  return imageTokens === null ? text : expandImagePads(text, [imageTokens]);
}

export interface ProcessedChat {
  /** prompt ids with every image pad expanded */
  ids: number[];
  /** [sum N, C*T*P*P], null without images */
  pixelValues: tf.Tensor2D | null;
  grids: GridTHW[];
}

/**
 * Qwen2_5_VLProcessor on (messages, images): the chat template, every image preprocessed, the
 * k-th <|image_pad|> expanded to image k's t*h*w/merge² copies, then tokenized.
 */
export function processChat(
  tokenizer: { encode(text: string): number[] },
  messages: ChatMessage[],
  images: ImageU8[],
  vc: Pick<QwenVisionConfig, 'patch_size' | 'spatial_merge_size' | 'temporal_patch_size'>,
  opts: ChatOptions & { minPixels?: number; maxPixels?: number } = {},
): ProcessedChat {
  const text = renderChat(messages, opts);
  const done = images.map(img => preprocessImage(img, vc, opts));
  try {
    const ids = tokenizer.encode(expandImagePads(text, done.map(p => p.tokens)));
    const pixelValues = done.length === 0 ? null : done.length === 1 ? done[0].pixelValues : tf.concat(done.map(p => p.pixelValues), 0) as tf.Tensor2D;
    if (done.length > 1) done.forEach(p => p.pixelValues.dispose());
    return { ids, pixelValues, grids: done.map(p => p.grid) };
  } catch (e) {
    done.forEach(p => p.pixelValues.dispose());
    throw e;
  }
}
