/**
 * Rewards for a group of responses to one sample (a GRPO group, or one evaluated response): each
 * response parsed once, the ground truth parsed once, the captions scored by CLIP in one call when
 * a reward of the variant needs it (RewardFn.needs), then each response's weighted total.
 * The trainer and the world evaluation both score through here, so neither knows what CLIP is.
 */
import type { ImageU8 } from '../io/resample.ts';
import { parseGroundTruth, parseResponse, type ParsedResponse } from '../prompt/answer.ts';
import type { DiscriminativeScores } from './components.ts';
import { captionScores, type CaptionScorer } from './discriminative.ts';
import { needsClip, rewardConfig, REWARDS, scoreContext, type RewardConfig, type RewardFn, type RewardResult } from './registry.ts';

export interface GroupSample {
  /** the image the policy saw (its view): CLIP crops the ground-truth box out of it */
  image: ImageU8;
  /** the ground truth in the view's frame (`<box>..</box><points>..</points>`) */
  solution: string;
  query?: string;
  [k: string]: unknown;
}

export interface ScoreOptions {
  config?: Partial<RewardConfig>;
  /** the caption scorer; needed when a reward of the variant reads CLIP scores */
  scorer?: CaptionScorer | null;
  /** the reward functions (default: the registry's REWARDS) */
  rewards?: readonly RewardFn[];
}

/** The reward of each response (in order) to one sample. */
export async function scoreGroup(responses: readonly (string | ParsedResponse)[], sample: GroupSample, opts: ScoreOptions = {}): Promise<RewardResult[]> {
  const config = rewardConfig(opts.config);
  const fns = opts.rewards ?? REWARDS;
  const parsed = responses.map(r => (typeof r === 'string' ? parseResponse(r) : r));
  const groundTruth = parseGroundTruth(sample.solution);
  const scores: (DiscriminativeScores | null)[] = needsClip(config.variant, fns) && opts.scorer
    ? await captionScores(opts.scorer, sample.image, groundTruth.box, parsed)
    : parsed.map(() => null);
  return parsed.map((p, k) => scoreContext({ parsed: p, groundTruth, sample, scores: scores[k], config }, fns));
}
