/**
 * segment(image, query): the released evaluation's flow (REFERENCE.md 4.2, 8.2). The policy sees
 * the image resized to its square view (840 x 840) and generates <think>/<answer>/<caption>; the
 * answer is read by the evaluation parser (prompt/extract.ts: first key containing 'bbox', first
 * two containing 'points') and scaled back with round(int(v) * W / 840), Python's half-to-even
 * round, NOT clamped to the image; box and points go to SAM2 (labels 1, 1, multimask) and the mask
 * with the highest score is the result. A response that does not parse is a result with a reason
 * (and `parseError`, the Python error text the evaluation records).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImageU8 } from '../io/resample.ts';
import { generate } from '../models/qwen2_5_vl/generate.ts';
import { Sam2Predictor } from '../models/sam2/predictor.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { parseResponse } from '../prompt/answer.ts';
import { answerInImage, frameOf } from './frame.ts';
import { encodePrompt, leftPad, type EncodedPrompt, type Policy } from './policy.ts';

export { answerGeometry } from '../prompt/answer.ts';

/** the released evaluation's max_new_tokens */
export const DEFAULT_MAX_NEW_TOKENS = 1024;

/**
 * The result of segment (the segment CLI's result.json, less the mask; docs/outputs.md).
 * Frames: `text`, `answer` (and the JSON inside them) are in the policy's VIEW frame, a square
 * of `view` x `view` pixels (840 for DPAD); `bbox`, `points`, `mask`, `width`, `height` are in
 * IMAGE pixels (the answer scaled back by width / view and height / view).
 * Token counts, with the same names and meanings in eval's results.jsonl: `generatedTokens`
 * (everything the policy generated, the stop token included) and `thinkTokens` (the tokens of
 * the first <think>([^<]+)</think>, 0 without one).
 */
export interface SegmentResult {
  query: string;
  /** the decoded response (special tokens skipped); its JSON is in the view frame */
  text: string;
  /** the first <think>([^<]+)</think>, null when none */
  think: string | null;
  /** the first <answer>(.*?)</answer>, raw, in the VIEW frame (view x view); null when none */
  answer: string | null;
  caption: string | null;
  /** the side (pixels) of the square view the policy saw and answered in */
  view: number;
  /**
   * the view x view image the policy saw (pipeline/frame.ts toView); the evaluation crops CLIP's
   * ROI from it. Not part of result.json; absent from results made elsewhere (e.g. test stubs).
   */
  viewImage?: ImageU8;
  /** [x1, y1, x2, y2] in IMAGE pixels: round(int(v) * W / view), may lie outside the image */
  bbox: [number, number, number, number] | null;
  /** [[x, y], [x, y]] in IMAGE pixels, scaled as bbox */
  points: [[number, number], [number, number]] | null;
  /** binary mask at the image's size, row-major width x height (null when nothing could be segmented) */
  mask: Uint8Array | null;
  /** SAM2's predicted IoU of the chosen mask */
  score: number | null;
  /** every generated token, the stop token included */
  generatedTokens: number;
  /** tokens of `think` (policy tokenizer, no special tokens); 0 without a think */
  thinkTokens: number;
  /** the image's size in pixels */
  width: number;
  height: number;
  /** why there is no mask */
  reason?: string;
  /** when the answer does not parse: CPython's str(e) for the released parser's error */
  parseError?: string;
}

export interface SegmentOptions {
  /** default 1024, the released evaluation's */
  maxNewTokens?: number;
  variant?: 'dpad' | 'baseline';
}

export interface SegmentBatchOptions extends SegmentOptions {
  /** prompts generated together (default 4) */
  batchSize?: number;
}

/**
 * evaluation.py's `np.argsort(scores)[::-1][0]`: the highest score; among equal scores the last
 * one (argsort is stable for so few elements and the reversal puts the later index first).
 */
export function bestMaskIndex(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] >= scores[best]) best = i;
  return best;
}

export class Segmenter {
  readonly policy: Policy;
  readonly sam: Sam2Image;
  /** where the weights came from (loadWeights sets it); the evaluation records it with the fingerprint */
  weightsDir: string | null;
  private readonly predictor: Sam2Predictor;

  constructor(policy: Policy, sam: Sam2Image, opts: { weightsDir?: string | null } = {}) {
    this.policy = policy;
    this.sam = sam;
    this.weightsDir = opts.weightsDir ?? null;
    this.predictor = new Sam2Predictor(sam);
  }

  async segment(image: ImageU8, query: string, opts: SegmentOptions = {}): Promise<SegmentResult> {
    return (await this.segmentBatch([{ image, query }], { ...opts, batchSize: 1 }))[0];
  }

  /**
   * segment over several (image, query) pairs, the prompts generated `batchSize` at a time
   * (left-padded, greedy): the results equal one segment call per pair. With a repetition
   * penalty, only prompts of equal length share a batch (the penalty sees a row's padding).
   */
  async segmentBatch(items: readonly { image: ImageU8; query: string }[], opts: SegmentBatchOptions = {}): Promise<SegmentResult[]> {
    const size = opts.batchSize ?? 4;
    if (!Number.isInteger(size) || size < 1) throw new Error(`segmentBatch: batchSize has to be a positive integer, but is ${size}`);
    items.forEach((it, k) => {
      if (!it || !it.image || typeof it.query !== 'string') throw new Error(`segmentBatch: item ${k} is not { image, query }`);
    });
    const texts: { text: string; tokens: number; view: ImageU8 }[] = new Array(items.length);
    const variant = opts.variant ?? 'dpad';
    const encode = (k: number) => encodePrompt(this.policy, items[k].image, items[k].query, variant);
    // batches in input order; with a repetition penalty, of one prompt length each
    const groups = new Map<number, number[]>();
    items.forEach((_, k) => {
      let key = 0;
      if (this.policy.repetitionPenalty !== 1) {
        const e = encode(k);
        e.pixelValues.dispose();
        key = e.ids.length;
      }
      groups.set(key, [...(groups.get(key) ?? []), k]);
    });
    for (const rows of groups.values()) {
      for (let a = 0; a < rows.length; a += size) {
        const chunk = rows.slice(a, a + size);
        const encs: EncodedPrompt[] = [];
        try {
          for (const k of chunk) encs.push(encode(k));
          const gen = this.generateRows(encs, opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS);
          chunk.forEach((k, r) => (texts[k] = { text: this.policy.tokenizer.decode(gen[r], true), tokens: gen[r].length, view: encs[r].view }));
        } finally {
          for (const e of encs) e.pixelValues.dispose();
        }
      }
    }
    const out: SegmentResult[] = [];
    for (let k = 0; k < items.length; k++) out.push(this.finish(items[k].image, items[k].query, texts[k].text, texts[k].tokens, texts[k].view));
    return out;
  }

  /** greedy generation for prompts of one batch: the generated ids per row */
  private generateRows(encs: EncodedPrompt[], maxNewTokens: number): number[][] {
    const { ids, mask, length } = leftPad(encs.map(e => e.ids), this.policy.model.config.pad_token_id);
    const pixels = encs.length === 1 ? encs[0].pixelValues : tf.concat(encs.map(e => e.pixelValues), 0);
    try {
      return generate(this.policy.model, {
        ids, batch: encs.length, length, attentionMask: mask, pixelValues: pixels, grids: encs.map(e => e.grid),
        maxNewTokens, greedy: true, stopTokens: this.policy.stopTokens, repetitionPenalty: this.policy.repetitionPenalty, suppressTokens: this.policy.suppressTokens,
      }).tokens;
    } finally {
      if (pixels !== encs[0].pixelValues) pixels.dispose();
    }
  }

  /** parse a response and run SAM2 on its box and points */
  private finish(image: ImageU8, query: string, text: string, generatedTokens: number, viewImage: ImageU8): SegmentResult {
    const { width: W, height: H } = image;
    const parsed = parseResponse(text);
    const base: SegmentResult = {
      query, text, think: parsed.think, answer: parsed.answer, caption: parsed.caption, view: this.policy.viewSize, viewImage, bbox: null, points: null, mask: null, score: null,
      generatedTokens, thinkTokens: parsed.think ? this.policy.tokenizer.encode(parsed.think).length : 0, width: W, height: H,
    };
    const g = answerInImage(text, frameOf(image, this.policy.viewSize));
    if ('error' in g) return { ...base, reason: `answer does not parse: ${g.error.message}`, parseError: g.error.detail };
    const { bbox, points } = g;
    this.predictor.setImage(image);
    try {
      const r = this.predictor.predict({ box: bbox, points, labels: [1, 1], multimask: true });
      const best = bestMaskIndex(r.scores);
      return { ...base, bbox, points, mask: r.masks[best], score: r.scores[best] };
    } finally {
      this.predictor.reset();
    }
  }

  dispose(): void {
    this.predictor.dispose();
  }
}
