/**
 * The discriminative reward's inputs for a batch of responses: each response's caption scored by
 * CLIP against the ground-truth-box crop (S1) and the whole image (S2) the policy saw.
 * The scorer is an interface, so rewards are testable with a stub.
 */
import type { ImageU8 } from '../io/resample.ts';
import type { DiscriminativeScores } from './components.ts';
import type { Box, ParsedResponse } from './parse.ts';

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
