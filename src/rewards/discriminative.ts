/**
 * The discriminative reward's inputs for a batch of responses: each response's caption scored by
 * CLIP against the ground-truth-box crop (S1) and the whole image (S2) the policy saw.
 * The scorer is an interface, so rewards are testable with a stub.
 */
import type { ImageU8 } from '../io/resample.ts';
import type { DiscriminativeScores } from './components.ts';
import type { Box, GroundTruth, ParsedResponse } from '../prompt/answer.ts';

/** get_clip_similarity_for_bbox returns 0 when the processor's input_ids (BOS + BPE + EOS) exceed this */
export const CLIP_MAX_IDS = 77;

/**
 * PIL's image.crop((x1, y1, x2, y2)).size: right/lower exclusive, so [x2 - x1, y2 - y1]; null
 * when PIL refuses the box (right < left or lower < upper raise ValueError). Regions outside the
 * image are zero-filled, so the size does not depend on the image.
 */
export function pilCropSize(box: Box): [number, number] | null {
  if (box[2] < box[0] || box[3] < box[1]) return null;
  return [box[2] - box[0], box[3] - box[1]];
}

/**
 * S1 and S2 as seg_clip_reward's two calls of get_clip_similarity_for_bbox yield them, from what
 * the CLIP scorer computes when it runs (`raw`) and the caption's CLIP id count (BOS + BPE + EOS):
 * - no <caption>…</caption> in the response, or more than 77 ids: both 0 (no truncation);
 * - no <box> in the ground truth, or a box PIL cannot crop (right < left, lower < upper): the crop
 *   fails inside its try, S1 = 0; S2 (the whole image) is still scored.
 */
export function releasedClipScores(p: ParsedResponse, gt: GroundTruth, captionIds: number | null, raw: DiscriminativeScores): DiscriminativeScores {
  if (p.caption === null || captionIds === null || captionIds > CLIP_MAX_IDS) return { s1: 0, s2: 0 };
  return { s1: gt.box && pilCropSize(gt.box) ? raw.s1 : 0, s2: raw.s2 };
}

export interface CaptionScorer {
  /** one result per text; null for a text CLIP cannot take (over 77 tokens) */
  scores(image: ImageU8, box: Box, texts: string[]): Promise<({ s1: number; s2: number } | null)[]>;
}

/**
 * Scores for responses that share one image and ground-truth box (a GRPO group). A response
 * without a caption gets null (reward 0), as does a caption over 77 tokens.
 */
export async function captionScores(scorer: CaptionScorer, image: ImageU8, gtBox: Box | null, responses: ParsedResponse[]): Promise<(DiscriminativeScores | null)[]> {
  const out: (DiscriminativeScores | null)[] = responses.map(() => null);
  if (!gtBox) return out;
  const idx: number[] = [];
  const texts: string[] = [];
  responses.forEach((p, i) => {
    if (p.caption !== null) { idx.push(i); texts.push(p.caption); }
  });
  if (texts.length === 0) return out;
  const s = await scorer.scores(image, gtBox, texts);
  idx.forEach((i, k) => (out[i] = s[k] ? { s1: s[k]!.s1, s2: s[k]!.s2 } : null));
  return out;
}
