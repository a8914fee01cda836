/** Golden adapter for the `rewards` family: the reference reward functions. */
import { boxL1Reward, discriminativeReward, iouReward, iouValue, pointsL1Reward, segmentationFormatReward, snr, thinkingFormatReward } from '../../../src/rewards/components.ts';
import { parseGroundTruth, parseResponse } from '../../../src/rewards/parse.ts';
import type { FamilyAdapter } from '../harness.ts';

export const rewardsAdapter: FamilyAdapter = {
  family: 'rewards',
  entries: {
    'rewards.geometric_and_format': inputs => {
      const p = parseResponse(String(inputs.response));
      const gt = parseGroundTruth(String(inputs.ground_truth));
      return {
        thinking_format: thinkingFormatReward(p).value,
        segmentation_format: segmentationFormatReward(p).value,
        iou_value: iouValue(p, gt).value,
        iou: iouReward(p, gt).value,
        box_l1: boxL1Reward(p, gt).value,
        points_l1: pointsL1Reward(p, gt).value,
      };
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
