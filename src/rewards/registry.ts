/**
 * The rewards as a registry of named functions with weights (TRL's reward_funcs): each reads one
 * typed context (the parsed response, the ground truth, the sample, the caption's CLIP scores,
 * the reward config) and returns its value. The total is the weighted sum, in registry order,
 * of the functions the variant uses (SPEC section 2: format, geometric and, for DPAD, the
 * discriminative component, all weighted 1 by the paper).
 * Adding a reward: a file exporting a RewardFn, and one line in REWARDS below (or a list passed
 * to computeReward / scoreGroup / the trainer's `rewards`).
 */
import {
  boxL1Reward, discriminativeReward, iouReward, pointsL1Reward, segmentationFormatReward, thinkingFormatReward,
  type DiscriminativeMode, type DiscriminativeScores, type RewardValue,
} from './components.ts';
import { parseGroundTruth, parseResponse, type GroundTruth, type ParsedResponse } from '../prompt/answer.ts';

export type RewardVariant = 'dpad' | 'baseline';

/** the built-in rewards, in registry order (their names are the config's `rewards.weights` keys) */
export const REWARD_COMPONENTS = ['thinking_format', 'segmentation_format', 'iou', 'box_l1', 'points_l1', 'discriminative'] as const;
export type RewardComponent = (typeof REWARD_COMPONENTS)[number];

export interface RewardConfig {
  /** 'dpad' (caption in the format, discriminative reward) or 'baseline' (Seg-Zero) */
  variant: RewardVariant;
  /** the discriminative formulation: binary (paper default), difference or scaled */
  discriminative: DiscriminativeMode;
  /** per-component weights (paper: all 1) */
  weights: Record<RewardComponent, number>;
}

export const DEFAULT_REWARD_CONFIG: RewardConfig = {
  variant: 'dpad',
  discriminative: 'binary',
  weights: { thinking_format: 1, segmentation_format: 1, iou: 1, box_l1: 1, points_l1: 1, discriminative: 1 },
};

/** What every reward function reads. */
export interface RewardContext {
  parsed: ParsedResponse;
  groundTruth: GroundTruth;
  /** the sample the response answers, when known (training: image, query, solution) */
  sample: { query?: string; solution?: string; [k: string]: unknown } | null;
  /** the caption's CLIP scores (S1 vs the ground-truth crop, S2 vs the whole image); null without a caption, over 77 tokens, or not computed */
  scores: DiscriminativeScores | null;
  config: RewardConfig;
}

export interface RewardFn {
  /** the component's name in logs and results (and its key in `rewards.weights` for the built-ins) */
  name: string;
  /** the weight when the config gives none for this name (default 1) */
  weight?: number;
  /** the variants that use it (default: both) */
  variants?: readonly RewardVariant[];
  /** inputs beyond the parsed answer and the ground truth: 'clip' = the caption's CLIP scores */
  needs?: readonly 'clip'[];
  fn(ctx: RewardContext): RewardValue;
}

/** The built-in rewards (components.ts), in the order the total sums them. */
export const REWARDS: readonly RewardFn[] = [
  { name: 'thinking_format', fn: c => thinkingFormatReward(c.parsed, { caption: c.config.variant === 'dpad' }) },
  { name: 'segmentation_format', fn: c => segmentationFormatReward(c.parsed) },
  { name: 'iou', fn: c => iouReward(c.parsed, c.groundTruth) },
  { name: 'box_l1', fn: c => boxL1Reward(c.parsed, c.groundTruth) },
  { name: 'points_l1', fn: c => pointsL1Reward(c.parsed, c.groundTruth) },
  { name: 'discriminative', variants: ['dpad'], needs: ['clip'], fn: c => discriminativeReward(c.parsed.caption === null ? null : c.scores, c.config.discriminative) },
];

export interface RewardResult {
  total: number;
  /** each reward function's value and reason, by name, in registry order */
  components: Record<string, RewardValue>;
  parsed: ParsedResponse;
}

/** a full config from a partial one (weights merged over the defaults) */
export function rewardConfig(config: Partial<RewardConfig> = {}): RewardConfig {
  return { ...DEFAULT_REWARD_CONFIG, ...config, weights: { ...DEFAULT_REWARD_CONFIG.weights, ...(config.weights ?? {}) } };
}

/** The functions of `fns` this variant uses, in order. */
export function rewardsFor(variant: RewardVariant, fns: readonly RewardFn[] = REWARDS): RewardFn[] {
  return fns.filter(f => !f.variants || f.variants.includes(variant));
}

/** The names of the components this variant uses. */
export function componentsOf(variant: RewardVariant, fns: readonly RewardFn[] = REWARDS): string[] {
  return rewardsFor(variant, fns).map(f => f.name);
}

/** Whether any reward of the variant reads the CLIP scores (then a scorer is needed). */
export function needsClip(variant: RewardVariant, fns: readonly RewardFn[] = REWARDS): boolean {
  return rewardsFor(variant, fns).some(f => f.needs?.includes('clip'));
}

/** The weighted sum of the variant's rewards for one context. */
export function scoreContext(ctx: RewardContext, fns: readonly RewardFn[] = REWARDS): RewardResult {
  const weights = ctx.config.weights as Record<string, number>;
  const components: Record<string, RewardValue> = {};
  let total = 0;
  for (const f of rewardsFor(ctx.config.variant, fns)) {
    const v = f.fn(ctx);
    components[f.name] = v;
    total += (weights[f.name] ?? f.weight ?? 1) * v.value;
  }
  return { total, components, parsed: ctx.parsed };
}

/**
 * Score one response. `scores` are the caption's CLIP scores (null when the response has no
 * caption or it is over 77 tokens); they are needed only by the dpad variant.
 */
export function computeReward(
  response: string | ParsedResponse,
  groundTruth: string | GroundTruth,
  scores: DiscriminativeScores | null,
  config: Partial<RewardConfig> = {},
  fns: readonly RewardFn[] = REWARDS,
): RewardResult {
  const parsed = typeof response === 'string' ? parseResponse(response) : response;
  const gt = typeof groundTruth === 'string' ? parseGroundTruth(groundTruth) : groundTruth;
  return scoreContext({ parsed, groundTruth: gt, sample: null, scores, config: rewardConfig(config) }, fns);
}
