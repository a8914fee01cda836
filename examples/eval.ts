/**
 * npm run eval -- --data <world:test[:N] | file.parquet | ReasonSeg folder> [--weights weights/demo] [--out out/eval]
 * Resumable: a killed evaluation continues where it stopped. Writes results.jsonl, metrics.json, report.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { worldSample, type Split } from '../src/data/world/generator.ts';
import { countReasonSeg, reasonSegSamples, type Skipped } from '../src/data/reasonseg.ts';
import { parquetEvalSamples, parquetRowCount } from '../src/data/parquet.ts';
import { evaluate, type EvalSample } from '../src/eval/evaluate.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom } from '../src/pipeline/bundle.ts';
import { Segmenter } from '../src/pipeline/segment.ts';

const { values } = parseArgs({ options: { data: { type: 'string', default: 'world:test:50' }, weights: { type: 'string', default: DEFAULT_WEIGHTS }, out: { type: 'string', default: 'out/eval' }, 'max-new-tokens': { type: 'string', default: '256' } } });
await initBackend();
const seg = new Segmenter(loadPolicyFrom(values.weights!), loadSegmenterModelFrom(values.weights!));
const scorer = fs.existsSync(path.join(values.weights!, 'clip')) ? loadScorerFrom(values.weights!) : null;
const skipped: Skipped[] = [];
let samples: Iterable<EvalSample> | AsyncIterable<EvalSample>;
let total: number;
const m = /^world:(train|val|test)(?::(\d+))?$/.exec(values.data!);
if (m) {
  total = Number(m[2] ?? 100);
  samples = (function* () {
    for (let i = 0; i < total; i++) {
      const s = worldSample(m[1] as Split, i);
      yield { id: s.id, image: s.image, query: s.query, mask: s.mask, labels: { type: s.type, difficulty: s.difficulty } };
    }
  })();
} else if (values.data!.endsWith('.parquet') && fs.existsSync(values.data!)) {
  total = await parquetRowCount(values.data!);
  samples = parquetEvalSamples(values.data!, skipped);
} else if (fs.existsSync(values.data!) && fs.statSync(values.data!).isDirectory()) {
  total = countReasonSeg(values.data!);
  samples = reasonSegSamples(values.data!, skipped);
} else {
  console.error(`--data ${values.data}: expected world:<split>[:N], a Seg-Zero .parquet, or a ReasonSeg folder`);
  process.exit(2);
}
const { tables } = await evaluate(seg, samples, total, { outDir: values.out!, scorer, maxNewTokens: Number(values['max-new-tokens']), name: values.data });
writeJsonAtomic(path.join(values.out!, 'skipped.json'), skipped);
console.log(`gIoU ${(tables.all.gIoU * 100).toFixed(1)}  cIoU ${(tables.all.cIoU * 100).toFixed(1)}  n ${tables.all.n}  skipped ${skipped.length}; report in ${values.out}/report.md`);
