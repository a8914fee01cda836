import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluateOnWorld } from '../src/eval/world_policy.ts';
import { bootstrapGIoU } from '../src/eval/bootstrap.ts';
import { tinyPolicy, tinySam, tinyScorer } from './helpers/world.ts';

test('evaluateOnWorld keeps the per-sample values behind its means: IoUs (gIoU), iou rewards and box IoUs (boxIoUAbove05)', async () => {
  const { policy, reference } = tinyPolicy(5);
  const sam = tinySam();
  const scorer = tinyScorer();
  const n = 3;
  const r = await evaluateOnWorld(policy, sam, scorer, { n, maxNewTokens: 6, quiet: true });
  const { iou, iouReward, boxIoU } = r.perSample;
  assert.is(iou.length, n);
  assert.is(iouReward.length, n);
  assert.is(boxIoU.length, n);
  const counted = iou.filter((x): x is number => x !== null);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  assert.ok(Math.abs(mean(counted) - r.gIoU) < 1e-12, 'gIoU is the mean of the per-sample IoUs');
  assert.ok(Math.abs(bootstrapGIoU(iou, { resamples: 20 }).estimate - r.gIoU) < 1e-12);
  assert.ok(iouReward.every(x => x === 0 || x === 1));
  assert.ok(Math.abs(mean(iouReward) - r.components.iou) < 1e-12, 'the iou component is the mean of the per-sample iou rewards');
  assert.is(r.boxIoUAbove05, boxIoU.filter(x => x > 0.5).length / n);
  assert.is(r.boxIoUAbove05, mean(iouReward));
  assert.ok(boxIoU.every(x => x >= 0 && x <= 1));
  policy.model.dispose(); reference.dispose(); sam.dispose(); scorer.dispose();
});

test.run();
