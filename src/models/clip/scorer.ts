/**
 * The discriminative scorer (SPEC section 2), batched: S1 = cos(text, ROI), S2 = cos(text, AOI),
 * as DPAD's get_clip_similarity_for_bbox computes them (see dpad.ts for the one-sample
 * reference path): the ROI is Pillow's crop of the image to the box (zero fill outside it), the
 * AOI the whole image, both through CLIPImageProcessor (floor centre crop) by default; texts go
 * through CLIPTokenizerFast's text path by default. SNR = S1 / S2. Texts over 77 CLIP ids
 * (start and end included) get no score (null), as the reference returns 0 for them; a box
 * with right < left or bottom < top gets S1 = 0, as the reference's crop fails into 0.0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadImage } from '../../io/image.ts';
import type { ImageU8 } from '../../io/resample.ts';
import { pilCrop } from './dpad.ts';
import { ClipModel, l2normalize } from './model.ts';
import { clipPreprocessBatch, type CropConvention } from './preprocess.ts';
import { ClipTokenizer, type TextNormalization } from './tokenizer.ts';
import { loadClip } from './weights.ts';

export type BoxXYXY = readonly [number, number, number, number];

export interface ScoreResult {
  s1: number;
  s2: number;
  snr: number;
}

export interface ScoreRequest {
  image: ImageU8 | string;
  box: BoxXYXY;
  texts: string[];
}

export interface ScorerOptions {
  /** image crop convention; default 'hf' (CLIPImageProcessor, what the DPAD reward code runs) */
  convention?: CropConvention;
  /** text path; default 'hf' (CLIPTokenizerFast, what the DPAD reward code runs) */
  text?: TextNormalization;
  /** images embedded per forward pass; default 8 */
  batchSize?: number;
}

/**
 * The ROI of a box as the reference crops it (Pillow): null when right < left or bottom < top;
 * an error when the crop is empty (the reference's processor fails there too).
 */
export function scorerRoi(image: ImageU8, box: BoxXYXY): ImageU8 | null {
  if (box.length !== 4 || !box.every(Number.isFinite)) throw new Error(`scorer: box ${JSON.stringify(box)} is not four finite numbers`);
  const roi = pilCrop(image, box);
  if (roi && (roi.width === 0 || roi.height === 0)) throw new Error(`scorer: box ${JSON.stringify(box)} crops an empty ${roi.width}x${roi.height} region`);
  return roi;
}

export class ClipScorer {
  readonly model: ClipModel;
  readonly tokenizer: ClipTokenizer;
  /** 'hf': CLIPImageProcessor's center crop, what the DPAD reward code runs */
  readonly convention: CropConvention;
  readonly maxTokens: number;
  /** images embedded per forward pass */
  readonly batchSize: number;

  constructor(model: ClipModel, tokenizer: ClipTokenizer, opts: ScorerOptions = {}) {
    this.model = model;
    this.tokenizer = tokenizer.withNormalization(opts.text ?? 'hf');
    this.convention = opts.convention ?? 'hf';
    this.maxTokens = model.config.text.context;
    this.batchSize = opts.batchSize ?? 8;
  }

  /**
   * A scorer from a model directory: config.json (HF, OpenAI or dpad layout), the weights
   * (model.safetensors, pytorch_model.bin, weights.safetensors; HF or OpenAI names), and a
   * tokenizer (bpe_simple_vocab_16e6.txt.gz, tokenizer.json, or vocab.json + merges.txt).
   */
  static load(dir: string, opts: ScorerOptions = {}): ClipScorer {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: not a CLIP model directory`);
    const gz = path.join(dir, 'bpe_simple_vocab_16e6.txt.gz');
    const tok = fs.existsSync(gz) ? ClipTokenizer.fromBpeFile(gz) : ClipTokenizer.fromHF(dir);
    return new ClipScorer(loadClip(dir), tok, opts);
  }

  /** L2-normalised image embeddings [N, D] of whole images. */
  embedImages(images: ImageU8[]): tf.Tensor2D {
    const r = this.model.config.vision.image;
    if (images.length === 0) return tf.zeros([0, this.model.config.embed]) as tf.Tensor2D;
    const parts: tf.Tensor2D[] = [];
    for (let i = 0; i < images.length; i += this.batchSize) {
      parts.push(tf.tidy(() => l2normalize(this.model.encodeImage(clipPreprocessBatch(images.slice(i, i + this.batchSize), r, this.convention)))));
    }
    const out = tf.concat(parts, 0) as tf.Tensor2D;
    for (const p of parts) p.dispose();
    return out;
  }

  /** L2-normalised text embeddings [N, D]; texts must fit the context (see fits). */
  embedTexts(texts: string[], truncate = false): tf.Tensor2D {
    return tf.tidy(() => {
      const t = this.tokenizer.tokenize(texts, this.maxTokens, truncate);
      return l2normalize(this.model.encodeText(tf.tensor2d(t.ids, t.shape, 'int32')));
    });
  }

  /** Whether a text fits CLIP's 77-token context, start and end tokens included. */
  fits(text: string): boolean {
    return this.tokenizer.countTokens(text) <= this.maxTokens;
  }

  /**
   * Scores of many texts against many (image, box) pairs; one forward pass per image batch and
   * per text batch. A text over 77 tokens yields null. `truncate` instead cuts such texts to 77
   * tokens (TS1/TS2 of think text).
   */
  async scoreMany(requests: ScoreRequest[], opts: { truncate?: boolean } = {}): Promise<(ScoreResult | null)[][]> {
    const images: ImageU8[] = [];
    for (const r of requests) images.push(typeof r.image === 'string' ? await loadImage(r.image) : r.image);
    const rois = requests.map((r, i) => scorerRoi(images[i], r.box));
    const flat: { req: number; idx: number; text: string }[] = [];
    requests.forEach((r, i) => r.texts.forEach((t, j) => {
      if (opts.truncate || this.fits(t)) flat.push({ req: i, idx: j, text: t });
    }));
    const out: (ScoreResult | null)[][] = requests.map(r => r.texts.map(() => null));
    if (flat.length === 0) return out;
    const cropped = rois.flatMap((r, i) => (r ? [i] : []));
    const roiEmb = this.embedImages(cropped.map(i => rois[i]!));
    const aoiEmb = this.embedImages(images);
    const txtEmb = this.embedTexts(flat.map(f => f.text), opts.truncate ?? false);
    const [roiRows, aoi, txt] = [roiEmb.arraySync(), aoiEmb.arraySync(), txtEmb.arraySync()];
    for (const t of [roiEmb, aoiEmb, txtEmb]) t.dispose();
    const roi: (number[] | null)[] = rois.map(() => null);
    cropped.forEach((i, k) => (roi[i] = roiRows[k]));
    const dot = (a: number[], b: number[]) => a.reduce((s, v, k) => s + v * b[k], 0);
    flat.forEach((f, k) => {
      const r = roi[f.req];
      const s1 = r ? dot(txt[k], r) : 0;
      const s2 = dot(txt[k], aoi[f.req]);
      out[f.req][f.idx] = { s1, s2, snr: s1 / s2 };
    });
    return out;
  }

  /** Scores of `texts` for one image and box. */
  async scores(image: ImageU8 | string, box: BoxXYXY, texts: string[], opts: { truncate?: boolean } = {}): Promise<(ScoreResult | null)[]> {
    return (await this.scoreMany([{ image, box, texts }], opts))[0];
  }

  dispose(): void {
    this.model.dispose();
  }
}
