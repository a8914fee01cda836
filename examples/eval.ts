/**
 * npm run eval -- --data <spec> [--data <spec> ...] [--weights weights/demo] [--out out/eval]
 *   <spec>: world:<train|val|test>[:N] | a Seg-Zero .parquet | a ReasonSeg folder | a refer folder
 *   a refer folder (refs(<split-by>).p + instances.json) also takes --images <COCO train2014> [--split val] [--split-by umd]
 * Resumable: a killed evaluation continues where it stopped. Per dataset: results.jsonl,
 * metrics.json, report.md, tokens_scatter.png (Figure 4), tokens_by_group.png, worst/ overlays;
 * with several datasets, one folder each under --out and tokens_by_dataset.png (Figure 5).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { worldSample, type Split } from '../src/data/world/generator.ts';
import { countReasonSeg, reasonSegSamples, type Skipped } from '../src/data/reasonseg.ts';
import { parquetEvalSamples, parquetRowCount } from '../src/data/parquet.ts';
import { refCocoIndex, refCocoSamples } from '../src/data/refcoco.ts';
import { evaluate, type EvalSample } from '../src/eval/evaluate.ts';
import { tokenBands } from '../src/eval/figures.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom } from '../src/pipeline/bundle.ts';
import { Segmenter } from '../src/pipeline/segment.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string', multiple: true }, weights: { type: 'string', default: DEFAULT_WEIGHTS }, out: { type: 'string', default: 'out/eval' },
    'max-new-tokens': { type: 'string', default: '256' }, images: { type: 'string' }, split: { type: 'string', default: 'val' }, 'split-by': { type: 'string', default: 'umd' },
    worst: { type: 'string', default: '8' },
  },
});
const specs = values.data?.length ? values.data : ['world:test:50'];

/** the samples and their count for one --data spec */
function open(spec: string, skipped: Skipped[]): { samples: Iterable<EvalSample> | AsyncIterable<EvalSample>; total: Promise<number> | number } {
  const m = /^world:(train|val|test)(?::(\d+))?$/.exec(spec);
  if (m) {
    const total = Number(m[2] ?? 100);
    const samples = (function* () {
      for (let i = 0; i < total; i++) {
        const s = worldSample(m[1] as Split, i);
        yield { id: s.id, image: s.image, query: s.query, mask: s.mask, labels: { type: s.type, difficulty: s.difficulty } };
      }
    })();
    return { samples, total };
  }
  if (spec.endsWith('.parquet') && fs.existsSync(spec)) return { samples: parquetEvalSamples(spec, skipped), total: parquetRowCount(spec) };
  if (fs.existsSync(path.join(spec, `refs(${values['split-by']}).p`))) {
    if (!values.images) throw new Error(`--data ${spec} is a refer folder: give --images <the COCO train2014 folder>`);
    const o = { annDir: spec, imageDir: values.images, split: values.split, splitBy: values['split-by'] };
    const entries = refCocoIndex(o, skipped);
    return { samples: refCocoSamples(o, entries, skipped), total: entries.length };
  }
  if (fs.existsSync(spec) && fs.statSync(spec).isDirectory()) return { samples: reasonSegSamples(spec, skipped), total: countReasonSeg(spec) };
  throw new Error(`--data ${spec}: expected world:<split>[:N], a Seg-Zero .parquet, a ReasonSeg folder, or a refer folder (refs(umd).p + instances.json)`);
}

await initBackend();
const seg = new Segmenter(loadPolicyFrom(values.weights!), loadSegmenterModelFrom(values.weights!));
const scorer = fs.existsSync(path.join(values.weights!, 'clip')) ? loadScorerFrom(values.weights!) : null;
const perDataset: { name: string; tokens: number[] }[] = [];
for (const spec of specs) {
  const skipped: Skipped[] = [];
  let opened;
  try {
    opened = open(spec, skipped);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  const outDir = specs.length > 1 ? path.join(values.out!, spec.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '')) : values.out!;
  const { tables, records } = await evaluate(seg, opened.samples, await opened.total, { outDir, scorer, maxNewTokens: Number(values['max-new-tokens']), name: spec, worst: Number(values.worst) });
  writeJsonAtomic(path.join(outDir, 'skipped.json'), skipped);
  perDataset.push({ name: spec, tokens: records.flatMap(r => (r.tokens != null ? [r.tokens] : [])) });
  console.log(`${spec}: gIoU ${(tables.all.gIoU * 100).toFixed(1)}  cIoU ${(tables.all.cIoU * 100).toFixed(1)}  n ${tables.all.n}  skipped ${skipped.length}; report in ${outDir}/report.md`);
}
if (specs.length > 1) {
  await tokenBands(path.join(values.out!, 'tokens_by_dataset'), perDataset);
  console.log(`Figure 5 (think tokens per dataset): ${values.out}/tokens_by_dataset.png`);
}
