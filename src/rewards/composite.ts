/**
 * The composite reward (SPEC section 2): the unweighted sum of format, geometric and, for DPAD,
 * discriminative components, with configurable weights and the Seg-Zero baseline variant.
 */
import {
  boxL1Reward, discriminativeReward, iouReward, pointsL1Reward, segmentationFormatReward, thinkingFormatReward,
  type DiscriminativeMode, type DiscriminativeScores, type RewardValue,
} from './components.ts';
import { parseGroundTruth, parseResponse, type GroundTruth, type ParsedResponse } from './parse.ts';

export type RewardVariant = 'dpad' | 'baseline';

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

export interface RewardResult {
  total: number;
  components: Partial<Record<RewardComponent, RewardValue>>;
  parsed: ParsedResponse;
}

/** The components this variant uses. */
export function componentsOf(variant: RewardVariant): RewardComponent[] {
  return variant === 'dpad' ? [...REWARD_COMPONENTS] : REWARD_COMPONENTS.filter(c => c !== 'discriminative');
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
): RewardResult {
  const cfg: RewardConfig = { ...DEFAULT_REWARD_CONFIG, ...config, weights: { ...DEFAULT_REWARD_CONFIG.weights, ...(config.weights ?? {}) } };
  const p = typeof response === 'string' ? parseResponse(response) : response;
  const gt = typeof groundTruth === 'string' ? parseGroundTruth(groundTruth) : groundTruth;
  const components: Partial<Record<RewardComponent, RewardValue>> = {
    thinking_format: thinkingFormatReward(p, { caption: cfg.variant === 'dpad' }),
    segmentation_format: segmentationFormatReward(p),
    iou: iouReward(p, gt),
    box_l1: boxL1Reward(p, gt),
    points_l1: pointsL1Reward(p, gt),
  };
  if (cfg.variant === 'dpad') components.discriminative = discriminativeReward(p.caption === null ? null : scores, cfg.discriminative);
  let total = 0;
  for (const [k, v] of Object.entries(components)) total += cfg.weights[k as RewardComponent] * v!.value;
  return { total, components, parsed: p };
}
