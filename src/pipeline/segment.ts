/**
 * segment(image, query): the SPEC section 1 flow. The policy sees the image resized to its
 * square view (840 x 840), generates <think>/<answer>/<caption>; the answer's box and points are
 * scaled back to the image and given to SAM2 (box + both points, labels 1, 1, multimask); the mask
 * with the highest score is the result. A response that does not parse is a result with a reason.
 */
import type { ImageU8 } from '../io/resample.ts';
import { generate } from '../models/qwen2_5_vl/generate.ts';
import { Sam2Predictor } from '../models/sam2/predictor.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { parseResponse, type ParsedResponse } from '../rewards/parse.ts';
import { pyGet, pyIndex, pyInt, pyNumber } from '../rewards/pycompat.ts';
import { encodePrompt, type Policy } from './policy.ts';

export interface SegmentResult {
  query: string;
  text: string;
  think: string | null;
  answer: string | null;
  caption: string | null;
  /** in image pixels, rounded */
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
}

export interface SegmentOptions {
  maxNewTokens?: number;
  variant?: 'dpad' | 'baseline';
}

/** box and points of an answer, in the policy frame; null with the reason when they do not parse */
export function answerGeometry(response: string | ParsedResponse): { box: number[]; points: [number[], number[]] } | { reason: string } {
  const p = typeof response === 'string' ? parseResponse(response) : response;
  if (p.json === null) return { reason: p.jsonError ?? 'no JSON answer' };
  try {
    const b = pyGet(p.json, 'bbox');
    const box = [0, 1, 2, 3].map(i => pyNumber(pyIndex(b, i, 'bbox'), `bbox[${i}]`));
    const pt = (k: string) => [pyInt(pyIndex(pyGet(p.json!, k), 0, k), k), pyInt(pyIndex(pyGet(p.json!, k), 1, k), k)];
    return { box, points: [pt('points_1'), pt('points_2')] };
  } catch (e) {
    return { reason: (e as Error).message };
  }
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
        maxNewTokens: opts.maxNewTokens ?? 1024, greedy: true, stopTokens: this.policy.stopTokens,
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
    const g = answerGeometry(parsed);
    if ('reason' in g) return { ...base, reason: `answer does not parse: ${g.reason}` };
    const v = this.policy.viewSize;
    const sx = W / v;
    const sy = H / v;
    const cx = (x: number) => Math.min(Math.max(Math.round(x * sx), 0), W);
    const cy = (y: number) => Math.min(Math.max(Math.round(y * sy), 0), H);
    const bbox: [number, number, number, number] = [cx(g.box[0]), cy(g.box[1]), cx(g.box[2]), cy(g.box[3])];
    const points: [[number, number], [number, number]] = [[cx(g.points[0][0]), cy(g.points[0][1])], [cx(g.points[1][0]), cy(g.points[1][1])]];
    if (!bbox.every(Number.isFinite)) return { ...base, reason: 'box is not finite' };
    this.predictor.setImage(image);
    try {
      const r = this.predictor.predict({ box: bbox, points, labels: [1, 1], multimask: true });
      let best = 0;
      r.scores.forEach((s, i) => { if (s > r.scores[best]) best = i; });
      return { ...base, bbox, points, mask: r.masks[best], score: r.scores[best] };
    } finally {
      this.predictor.reset();
    }
  }

  dispose(): void {
    this.predictor.dispose();
  }
}
