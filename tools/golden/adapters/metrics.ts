/** Golden adapter for the `metrics` family: gIoU / cIoU over masks. */
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { giouCiou, maskIntersectionUnion } from '../../../src/eval/metrics.ts';
import type { FamilyAdapter } from '../harness.ts';

export const metricsAdapter: FamilyAdapter = {
  family: 'metrics',
  entries: {
    'metrics.giou_ciou': inputs => {
      const pred = inputs.pred_masks as RawTensor;
      const gt = inputs.gt_masks as RawTensor;
      if (pred.shape.join() !== gt.shape.join()) throw new Error(`pred_masks [${pred.shape}] vs gt_masks [${gt.shape}]`);
      const [n, h, w] = pred.shape;
      const records = [];
      for (let k = 0; k < n; k++) {
        records.push(maskIntersectionUnion(pred.data.subarray(k * h * w, (k + 1) * h * w), gt.data.subarray(k * h * w, (k + 1) * h * w)));
      }
      return giouCiou(records);
    },
  },
};
