/**
 * DPAD's CLIP similarity, as the released reward code computes it (seg_cap.py
 * get_clip_similarity_for_bbox, run once with the ground truth for the ROI and once without it
 * for the AOI by seg_restrict.py seg_clip_reward):
 * 1. ROI: the ground truth's first `<box>(x1,y1),(x2,y2)</box>` (Python `\d+`, so Unicode
 *    digits too), Pillow's crop (right/bottom exclusive, zero fill outside the image). No box,
 *    or right < left / bottom < top (Pillow raises ValueError): 0.0.
 * 2. Caption: the first `<caption>(.*?)</caption>` (DOTALL), str.strip()ed; none: 0.0.
 * 3. CLIPProcessor: ids [49406] + BPE + [49407] through CLIPTokenizerFast's text path,
 *    unpadded and uncut; pixels through CLIPImageProcessor (floor centre crop). More than
 *    77 ids: 0.0.
 * 4. The dot product of CLIPModel's text_embeds and image_embeds (projected, L2-normalised; no logit scale).
 * A zero-width or zero-height crop that reaches the processor is an error, as it is there
 * (ZeroDivisionError in the resize).
 */
import * as tf from '@tensorflow/tfjs-core';
import { crop, type ImageU8 } from '../../io/resample.ts';
import { l2normalize, type ClipModel } from './model.ts';
import { clipPreprocess } from './preprocess.ts';
import { firstLazyTag, firstTaggedQuad } from '../../util/scan.ts';
import { pyRound, pyStrip } from './text.ts';
import type { ClipTokenizer } from './tokenizer.ts';

/** The hard-coded id limit of get_clip_similarity_for_bbox (start and end tokens included). */
export const DPAD_MAX_IDS = 77;

export type PilBox = [number, number, number, number];

/**
 * The first `<box>(x1,y1),(x2,y2)</box>` of a ground-truth string (Python's `\d+`: any Unicode
 * decimal digits), or null; read by a linear-time scan (util/scan.ts), not a regex.
 */
export function dpadGroundTruthBox(groundTruth: string): PilBox | null {
  return firstTaggedQuad(groundTruth, 'box');
}

/** The first `<caption>(.*?)</caption>` (DOTALL), stripped; null when there is none. Linear time (util/scan.ts). */
export function dpadCaption(response: string): string | null {
  const m = firstLazyTag(response, '<caption>', '</caption>');
  return m === null ? null : pyStrip(m);
}

/**
 * Image.crop(box) of Pillow: null when right < left or bottom < top (Pillow's ValueError);
 * coordinates rounded half to even as Pillow does; outside the image is black.
 */
export function pilCrop(image: ImageU8, box: readonly number[]): ImageU8 | null {
  if (box.length !== 4 || !box.every(Number.isFinite)) throw new Error(`crop: box ${JSON.stringify(box)} is not four finite numbers`);
  if (box[2] < box[0] || box[3] < box[1]) return null;
  const [x1, y1, x2, y2] = box.map(pyRound);
  return crop(image, x1, y1, x2, y2);
}

export interface DpadSimilarity {
  /** what get_clip_similarity_for_bbox returns */
  score: number;
  /** why the score is 0.0 without being computed */
  reason?: string;
  caption: string | null;
  /** [L] CLIPProcessor's input_ids[0], when a caption exists */
  inputIds: number[] | null;
  /** [1, 3, R, R], when a caption exists */
  pixelValues: Float32Array | null;
  /** [1, D] CLIPModel's outputs.text_embeds / image_embeds (projected, L2-normalised), when the ids fit */
  textEmbeds: Float32Array | null;
  imageEmbeds: Float32Array | null;
}

const zero = (reason: string, caption: string | null = null): DpadSimilarity => ({ score: 0, reason, caption, inputIds: null, pixelValues: null, textEmbeds: null, imageEmbeds: null });

/**
 * get_clip_similarity_for_bbox(image, groundTruth, response): the ROI score with a ground-truth
 * string, the AOI score (whole image) with null. `tokenizer` should take the 'hf' text path
 * (the DPAD processor's); `resolution` is the processor's size (vision image size by default).
 */
export function dpadSimilarity(model: ClipModel, tokenizer: ClipTokenizer, image: ImageU8, groundTruth: string | null, response: string, resolution = model.config.vision.image): DpadSimilarity {
  let view = image;
  if (groundTruth !== null) {
    const box = dpadGroundTruthBox(groundTruth);
    if (box === null) return zero('ground truth has no <box>(x1,y1),(x2,y2)</box>');
    const c = pilCrop(image, box);
    if (c === null) return zero(`ground-truth box ${JSON.stringify(box)} has right < left or bottom < top`);
    view = c;
  }
  const caption = dpadCaption(response);
  if (caption === null) return zero('response has no <caption>…</caption>');
  if (view.width === 0 || view.height === 0) {
    throw new Error(`dpad similarity: the ground-truth box of ${JSON.stringify(groundTruth)} crops an empty ${view.width}x${view.height} image (the reference processor fails on it)`);
  }
  const inputIds = tokenizer.ids(caption);
  const px = clipPreprocess(view, resolution, 'hf');
  try {
    const pixelValues = px.dataSync() as Float32Array;
    if (inputIds.length > DPAD_MAX_IDS) {
      return { score: 0, reason: `caption takes ${inputIds.length} CLIP ids (> ${DPAD_MAX_IDS})`, caption, inputIds, pixelValues, textEmbeds: null, imageEmbeds: null };
    }
    const [textEmbeds, imageEmbeds, cos] = tf.tidy(() => {
      const t = l2normalize(model.encodeText(tf.tensor2d(inputIds, [1, inputIds.length], 'int32')));
      const v = l2normalize(model.encodeImage(px));
      const s = tf.sum(tf.mul(t, v));
      return [t.dataSync() as Float32Array, v.dataSync() as Float32Array, s.dataSync()[0]] as const;
    });
    return { score: cos, caption, inputIds, pixelValues, textEmbeds, imageEmbeds };
  } finally {
    px.dispose();
  }
}

/** Both scores of seg_clip_reward: S1 against the ground-truth-box crop, S2 against the whole image. */
export function dpadScores(model: ClipModel, tokenizer: ClipTokenizer, image: ImageU8, groundTruth: string, response: string, resolution?: number): { roi: DpadSimilarity; aoi: DpadSimilarity } {
  return { roi: dpadSimilarity(model, tokenizer, image, groundTruth, response, resolution), aoi: dpadSimilarity(model, tokenizer, image, null, response, resolution) };
}
