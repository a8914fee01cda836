/**
 * A policy measured on the embedded world's held-out split with greedy decoding: the mean of
 * the composite reward and of each component (against the world's ground truth, CLIP scoring the
 * caption as in training) and gIoU / cIoU of the full segment pipeline (policy -> SAM2), with the
 * per-sample values behind them (`perSample`, for a bootstrap over samples: eval/bootstrap.ts).
 * `npm run train` reports it before and after training.
 */
import { worldSample, type Split } from '../data/world/generator.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import type { CaptionScorer } from '../rewards/discriminative.ts';
import type { RewardConfig } from '../rewards/registry.ts';
import { scoreGroup } from '../rewards/score.ts';
import { iouValue } from '../rewards/components.ts';
import { parseGroundTruth } from '../prompt/answer.ts';
import { toView } from '../pipeline/frame.ts';
import type { Policy } from '../pipeline/policy.ts';
import { Segmenter } from '../pipeline/segment.ts';
import { Progress } from '../util/progress.ts';
import { giouCiou, sampleOutcome, type SampleOutcome } from './metrics.ts';
import { sampleIoUs } from './bootstrap.ts';

export interface WorldPolicyReport {
  split: Split;
  n: number;
  /** mean composite reward (the variant's components, weights 1) */
  reward: number;
  components: Record<string, number>;
  gIoU: number;
  cIoU: number;
  meanResponseTokens: number;
  /**
   * the fraction of samples whose predicted box has IoU > 0.5 with the ground-truth box (the
   * policy's answer alone, before SAM2): the mean of the `iou` reward component
   */
  boxIoUAbove05: number;
  /** per sample, in sample order (index k = worldSample(split, k)) */
  perSample: {
    /** mask IoU of the pipeline as giouCiou counts it (a parse failure 0; null: dropped, in no metric); their mean is gIoU */
    iou: (number | null)[];
    /** the `iou` reward component's value (1: box IoU > 0.5, else 0) */
    iouReward: number[];
    /** the raw box IoU of the policy's answer vs the ground-truth box (0 when it cannot be computed) */
    boxIoU: number[];
  };
}

export async function evaluateOnWorld(policy: Policy, sam: Sam2Image, scorer: CaptionScorer | null, opts: { split?: Split; n?: number; maxNewTokens?: number; rewards?: Partial<RewardConfig>; quiet?: boolean } = {}): Promise<WorldPolicyReport> {
  const split = opts.split ?? 'test';
  const n = opts.n ?? 40;
  const seg = new Segmenter(policy, sam);
  const sums: Record<string, number> = {};
  let reward = 0;
  let tokens = 0;
  const iu: SampleOutcome[] = [];
  const iouReward: number[] = [];
  const boxIoU: number[] = [];
  const bar = opts.quiet ? null : new Progress(`eval ${split}`, n);
  const v = policy.viewSize;
  try {
    for (let i = 0; i < n; i++) {
      const s = worldSample(split, i, { frame: v });
      const r = await seg.segment(s.image, s.query, { maxNewTokens: opts.maxNewTokens ?? 160, variant: opts.rewards?.variant ?? 'dpad' });
      // CLIP scores the caption against the view the policy saw, as in training
      const [rw] = await scoreGroup([r.text], { image: r.viewImage ?? toView(s.image, v), solution: s.solution, query: s.query }, { config: opts.rewards, scorer });
      reward += rw.total;
      for (const [k, c] of Object.entries(rw.components)) sums[k] = (sums[k] ?? 0) + c!.value;
      const box = iouValue(rw.parsed, parseGroundTruth(s.solution)).value;
      boxIoU.push(box);
      // the registry's iou component when the variant scored it, else the same rule (IoU > 0.5)
      iouReward.push(rw.components.iou?.value ?? (box > 0.5 ? 1 : 0));
      iu.push(sampleOutcome(r.parseError === undefined ? r.mask : null, s.mask));
      tokens += r.generatedTokens;
      bar?.tick();
    }
  } finally {
    seg.dispose();
  }
  const { gIoU, cIoU } = giouCiou(iu);
  const above = boxIoU.filter(x => x > 0.5).length;
  return {
    split, n, reward: reward / n, components: Object.fromEntries(Object.entries(sums).map(([k, x]) => [k, x / n])), gIoU, cIoU, meanResponseTokens: tokens / n,
    boxIoUAbove05: n ? above / n : 0,
    perSample: { iou: sampleIoUs(iu), iouReward, boxIoU },
  };
}
