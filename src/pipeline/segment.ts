/**
 * segment(image, query): the released evaluation's flow (REFERENCE.md 4.2, 8.2). The policy sees
 * the image resized to its square view (840 x 840) and generates <think>/<answer>/<caption>; the
 * answer is read by the evaluation parser (rewards/extract.ts: first key containing 'bbox', first
 * two containing 'points') and scaled back with round(int(v) * W / 840), Python's half-to-even
 * round, NOT clamped to the image; box and points go to SAM2 (labels 1, 1, multimask) and the mask
 * with the highest score is the result. A response that does not parse is a result with a reason
 * (and `parseError`, the Python error text the evaluation records).
 */
import type { ImageU8 } from '../io/resample.ts';
import { generate } from '../models/qwen2_5_vl/generate.ts';
import { Sam2Predictor } from '../models/sam2/predictor.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { extractPrediction } from '../rewards/extract.ts';
import { parseResponse } from '../rewards/parse.ts';
import { PyError } from '../rewards/pycompat.ts';
import { encodePrompt, type Policy } from './policy.ts';

export interface SegmentResult {
  query: string;
  text: string;
  think: string | null;
  answer: string | null;
  caption: string | null;
  /** in image pixels: round(int(v) * W / view), may lie outside the image */
  bbox: [number, number, number, number] | null;
  points: [[number, number], [number, number]] | null;
  /** binary mask at the image's size (null when nothing could be segmented) */
  mask: Uint8Array | null;
  score: number | null;
  /** generated tokens */
  tokens: number;
  /** think tokens (policy tokenizer, no special tokens) */
  thinkTokens: number;
  width: number;
  height: number;
  /** why there is no mask */
  reason?: string;
  /** when the answer does not parse: CPython's str(e) for the released parser's error */
  parseError?: string;
}

export interface SegmentOptions {
  maxNewTokens?: number;
  variant?: 'dpad' | 'baseline';
}

/**
 * Box and points of a response in image pixels (width x height) from a policy that saw a
 * view x view image: the released evaluation's extract_bbox_points_think with factors W/view,
 * H/view. Returns the PyError when it does not parse.
 */
export function answerGeometry(text: string, width: number, height: number, view = 840): { bbox: [number, number, number, number]; points: [[number, number], [number, number]] } | { error: PyError } {
  try {
    const p = extractPrediction(text, width / view, height / view);
    return { bbox: p.bbox, points: p.points };
  } catch (e) {
    if (e instanceof PyError) return { error: e };
    throw e;
  }
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
  private readonly predictor: Sam2Predictor;

  constructor(policy: Policy, sam: Sam2Image) {
    this.policy = policy;
    this.sam = sam;
    this.predictor = new Sam2Predictor(sam);
  }

  async segment(image: ImageU8, query: string, opts: SegmentOptions = {}): Promise<SegmentResult> {
    const { width: W, height: H } = image;
    const enc = encodePrompt(this.policy, image, query, opts.variant ?? 'dpad');
    const ids = Int32Array.from(enc.ids);
    let gen;
    try {
      gen = generate(this.policy.model, {
        ids, batch: 1, length: ids.length, pixelValues: enc.pixelValues, grids: [enc.grid],
        maxNewTokens: opts.maxNewTokens ?? 1024, greedy: true, stopTokens: this.policy.stopTokens, repetitionPenalty: this.policy.repetitionPenalty,
      });
    } finally {
      enc.pixelValues.dispose();
    }
    const toks = gen.tokens[0];
    const text = this.policy.tokenizer.decode(toks, true);
    const parsed = parseResponse(text);
    const base: SegmentResult = {
      query, text, think: parsed.think, answer: parsed.answer, caption: parsed.caption, bbox: null, points: null, mask: null, score: null,
      tokens: toks.length, thinkTokens: parsed.think ? this.policy.tokenizer.encode(parsed.think).length : 0, width: W, height: H,
    };
    const g = answerGeometry(text, W, H, this.policy.viewSize);
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
