/** Golden adapter for the `metrics` family: the released evaluation (evaluation.py, calculate_iou.py, get_tokens.py). */
import * as path from 'node:path';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { evaluateMasks } from '../../../src/eval/metrics.ts';
import { thinkTokenStats } from '../../../src/eval/tokens.ts';
import { PolicyTokenizer } from '../../../src/models/qwen2_5_vl/tokenizer.ts';
import { extractPrediction } from '../../../src/prompt/extract.ts';
import { PyError } from '../../../src/util/pycompat.ts';
import type { FamilyAdapter, FixtureContext, OutputValue } from '../harness.ts';

function masks(t: RawTensor, name: string): { n: number; at: (k: number) => ArrayLike<number> } {
  if (t.shape.length !== 3) throw new Error(`${name}: expected [N, H, W], got [${t.shape}]`);
  const [n, h, w] = t.shape;
  return { n, at: k => t.data.subarray(k * h * w, (k + 1) * h * w) };
}

function tokenizer(ctx: FixtureContext): PolicyTokenizer {
  let tok = ctx.state.get('tokenizer') as PolicyTokenizer | undefined;
  if (!tok) {
    const a = ctx.fixture.assets ?? {};
    if (!a.vocab || !a.merges) throw new Error(`${ctx.dir}/fixture.json: metrics.think_tokens needs assets 'vocab' and 'merges'`);
    tok = PolicyTokenizer.fromFiles(path.join(ctx.dir, a.vocab), path.join(ctx.dir, a.merges));
    ctx.state.set('tokenizer', tok);
  }
  return tok;
}

export const metricsAdapter: FamilyAdapter = {
  family: 'metrics',
  entries: {
    'metrics.giou_ciou': inputs => {
      const pred = masks(inputs.pred_masks as RawTensor, 'pred_masks');
      const gt = masks(inputs.gt_masks as RawTensor, 'gt_masks');
      const parsed = inputs.parsed as RawTensor;
      if ((inputs.pred_masks as RawTensor).shape.join() !== (inputs.gt_masks as RawTensor).shape.join()) {
        throw new Error(`pred_masks [${(inputs.pred_masks as RawTensor).shape}] vs gt_masks [${(inputs.gt_masks as RawTensor).shape}]`);
      }
      if (parsed.data.length !== pred.n) throw new Error(`parsed has ${parsed.data.length} entries for ${pred.n} samples`);
      const preds = Array.from({ length: pred.n }, (_, k) => (parsed.data[k] ? pred.at(k) : null));
      const r = evaluateMasks(preds, Array.from({ length: gt.n }, (_, k) => gt.at(k)));
      return {
        intersection: { shape: [pred.n], data: r.outcomes.map(o => o.i) },
        union: { shape: [pred.n], data: r.outcomes.map(o => o.u) },
        counted: { shape: [pred.n], data: r.outcomes.map(o => (o.counted ? 1 : 0)) },
        gIoU: r.gIoU,
        cIoU: r.cIoU,
      };
    },
    'metrics.extract_prediction': (inputs): Record<string, OutputValue> => {
      const frame = Number(inputs.resize_size);
      try {
        const p = extractPrediction(String(inputs.output_text), Number(inputs.img_width) / frame, Number(inputs.img_height) / frame);
        return { raises: false, bbox: p.bbox, points: p.points, think: p.think };
      } catch (e) {
        if (!(e instanceof PyError)) throw e;
        return { raises: true };
      }
    },
    'metrics.think_tokens': (inputs, ctx) => {
      const tok = tokenizer(ctx);
      const texts = inputs.think_texts;
      if (!Array.isArray(texts)) throw new Error("metrics.think_tokens: input 'think_texts' is not a list");
      const s = thinkTokenStats(texts, t => tok.encode(t));
      if (!s) throw new Error('metrics.think_tokens: no non-empty think text');
      return { ...s };
    },
  },
};
