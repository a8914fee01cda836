/**
 * The discriminative scorer (SPEC section 2): S1 = cos(text, ROI), S2 = cos(text, AOI), where the
 * ROI is the image cropped to a box and the AOI the whole image, both through CLIP's own
 * preprocessing; SNR = S1 / S2. Texts over 77 CLIP tokens (start and end included) get no score,
 * as the reference returns 0 for them. Images and texts are embedded in batches.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadImage } from '../../io/image.ts';
import { crop, type ImageU8 } from '../../io/resample.ts';
import { ClipModel, l2normalize } from './model.ts';
import { clipPreprocessBatch, type CropConvention } from './preprocess.ts';
import { ClipTokenizer } from './tokenizer.ts';
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

/** Round a box to integers and clip it to the image; an empty result is an error naming the box. */
export function clipBoxToImage(box: BoxXYXY, width: number, height: number): [number, number, number, number] {
  if (box.length !== 4 || !box.every(Number.isFinite)) throw new Error(`scorer: box ${JSON.stringify(box)} is not four finite numbers`);
  const x1 = Math.max(0, Math.round(box[0]));
  const y1 = Math.max(0, Math.round(box[1]));
  const x2 = Math.min(width, Math.round(box[2]));
  const y2 = Math.min(height, Math.round(box[3]));
  if (x2 <= x1 || y2 <= y1) throw new Error(`scorer: box ${JSON.stringify(box)} is empty after clipping to the ${width}x${height} image`);
  return [x1, y1, x2, y2];
}

export class ClipScorer {
  readonly model: ClipModel;
  readonly tokenizer: ClipTokenizer;
  /** 'hf': CLIPImageProcessor's center crop, what the DPAD reward code runs */
  readonly convention: CropConvention;
  readonly maxTokens: number;
  /** images embedded per forward pass */
  readonly batchSize: number;

  constructor(model: ClipModel, tokenizer: ClipTokenizer, opts: { convention?: CropConvention; batchSize?: number } = {}) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.convention = opts.convention ?? 'hf';
    this.maxTokens = model.config.text.context;
    this.batchSize = opts.batchSize ?? 8;
  }

  /**
   * A scorer from a directory with config.json, the weights, and a tokenizer
   * (bpe_simple_vocab_16e6.txt.gz, tokenizer.json, or vocab.json + merges.txt).
   */
  static load(dir: string, opts: { convention?: CropConvention; batchSize?: number } = {}): ClipScorer {
    const gz = path.join(dir, 'bpe_simple_vocab_16e6.txt.gz');
    const tok = fs.existsSync(gz) ? ClipTokenizer.fromBpeFile(gz) : ClipTokenizer.fromHF(dir);
    return new ClipScorer(loadClip(dir), tok, opts);
  }

  /** L2-normalised image embeddings [N, D] of whole images. */
  embedImages(images: ImageU8[]): tf.Tensor2D {
    const r = this.model.config.vision.image;
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
    const rois = requests.map((r, i) => {
      const [x1, y1, x2, y2] = clipBoxToImage(r.box, images[i].width, images[i].height);
      return crop(images[i], x1, y1, x2, y2);
    });
    const flat: { req: number; idx: number; text: string }[] = [];
    requests.forEach((r, i) => r.texts.forEach((t, j) => {
      if (opts.truncate || this.fits(t)) flat.push({ req: i, idx: j, text: t });
    }));
    const out: (ScoreResult | null)[][] = requests.map(r => r.texts.map(() => null));
    if (flat.length === 0) return out;
    const roiEmb = this.embedImages(rois);
    const aoiEmb = this.embedImages(images);
    const txtEmb = this.embedTexts(flat.map(f => f.text), opts.truncate ?? false);
    const [roi, aoi, txt] = [roiEmb.arraySync(), aoiEmb.arraySync(), txtEmb.arraySync()];
    for (const t of [roiEmb, aoiEmb, txtEmb]) t.dispose();
    const dot = (a: number[], b: number[]) => a.reduce((s, v, k) => s + v * b[k], 0);
    flat.forEach((f, k) => {
      const s1 = dot(txt[k], roi[f.req]);
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
