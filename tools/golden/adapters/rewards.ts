/** Golden adapter for the `rewards` family: the released reward functions (DPAD seg_restrict.py, Seg-Zero's baseline). */
import {
  boxL1Reward, discriminativeReward, iouReward, iouValue, pointsL1Reward, segmentationFormatReward, snr, thinkingFormatReward,
} from '../../../src/rewards/components.ts';
import { computeReward } from '../../../src/rewards/registry.ts';
import { pilCropSize, releasedClipScores } from '../../../src/rewards/discriminative.ts';
import { parseGroundTruth, parseResponse } from '../../../src/prompt/answer.ts';
import type { FamilyAdapter, OutputValue } from '../harness.ts';

const parse = (inputs: Record<string, unknown>) => ({ p: parseResponse(String(inputs.response)), gt: parseGroundTruth(String(inputs.ground_truth)) });

export const rewardsAdapter: FamilyAdapter = {
  family: 'rewards',
  entries: {
    'rewards.format': inputs => {
      const { p } = parse(inputs);
      return {
        thinking_format: thinkingFormatReward(p).value,
        thinking_format_segzero: thinkingFormatReward(p, { caption: false }).value,
        segmentation_format: segmentationFormatReward(p).value,
      };
    },
    'rewards.iou': inputs => {
      const { p, gt } = parse(inputs);
      const r = iouReward(p, gt).value;
      return { iou: iouValue(p, gt).value, iou_reward: r, iou_reward_segzero: r };
    },
    'rewards.bbox_l1': inputs => {
      const { p, gt } = parse(inputs);
      return { box_l1_reward: boxL1Reward(p, gt).value };
    },
    'rewards.points_l1': inputs => {
      const { p, gt } = parse(inputs);
      return { point_l1_reward: pointsL1Reward(p, gt).value };
    },
    'rewards.composite': inputs => {
      const { p, gt } = parse(inputs);
      // the CLIP scorer's raw cosines and the caption's BPE count come as inputs (the fixture's stand-in model)
      const bpe = inputs.caption_clip_tokens;
      const scores = releasedClipScores(p, gt, typeof bpe === 'number' ? bpe + 2 : null, { s1: Number(inputs.clip_s1), s2: Number(inputs.clip_s2) });
      const scaled = computeReward(p, gt, scores, { discriminative: 'scaled' });
      const c = scaled.components;
      const out: Record<string, OutputValue> = {
        s1: scores.s1,
        s2: scores.s2,
        thinking_format_reward: c.thinking_format!.value,
        segmentation_format_reward: c.segmentation_format!.value,
        iou_reward: c.iou!.value,
        point_l1_reward: c.points_l1!.value,
        box_l1_reward: c.box_l1!.value,
        clip_reward: c.discriminative!.value,
        total: scaled.total,
        total_binary_paper: computeReward(p, gt, scores, { discriminative: 'binary' }).total,
        total_difference_paper: computeReward(p, gt, scores, { discriminative: 'difference' }).total,
        total_segzero: computeReward(p, gt, null, { variant: 'baseline' }).total,
      };
      const roi = gt.box ? pilCropSize(gt.box) : null;
      if (roi) out.roi_size = roi;
      return out;
    },
    'rewards.discriminative': inputs => {
      const s = { s1: Number(inputs.s1), s2: Number(inputs.s2) };
      return {
        binary: discriminativeReward(s, 'binary').value,
        difference: discriminativeReward(s, 'difference').value,
        scaled: discriminativeReward(s, 'scaled').value,
        snr: snr(s),
      };
    },
  },
};
