/**
 * GRPO training in one process:
 *   npx tsx examples/train.ts [--config train.json] [--weights weights/demo] [--out runs/grpo] [--fresh] [--eval N]
 * On the world (no --data), the policy is measured on N held-out test samples before and after
 * training (mean total reward, its components, gIoU, cIoU; greedy decoding): before_after.json.
 * The config's fields (src/rl/config.ts) default to the paper's. Without --data the embedded world's
 * train split is used; with --data, a Seg-Zero training parquet (see README).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { worldSample } from '../src/data/world/generator.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { evaluateOnWorld } from '../src/eval/world_policy.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom } from '../src/pipeline/bundle.ts';
import { readTrainConfig, trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer, type TrainDataset } from '../src/rl/trainer.ts';
import { parquetTrainSamples } from '../src/data/parquet.ts';

const { values } = parseArgs({ options: {
  config: { type: 'string' }, weights: { type: 'string', default: DEFAULT_WEIGHTS }, out: { type: 'string' },
  fresh: { type: 'boolean', default: false }, 'world-size': { type: 'string', default: '512' }, data: { type: 'string' }, subset: { type: 'string', default: '3000' },
  eval: { type: 'string', default: '40' },
} });
await initBackend();
const cfg = values.config ? readTrainConfig(values.config) : trainConfig({});
if (values.out) cfg.outDir = values.out;
const policy = loadPolicyFrom(values.weights!);
const reference = new Qwen2_5_VL(policy.model.config);
{
  const ex = policy.model.exportTensors();
  reference.load(ex);
  for (const t of ex.values()) t.dispose();
}
const scorer = cfg.rewards.variant === 'dpad' ? loadScorerFrom(values.weights!) : null;
const n = Number(values['world-size']);
const frame = policy.viewSize;
let data: TrainDataset = { size: n, get: i => { const s = worldSample('train', i, { frame }); return { image: s.image, query: s.query, solution: s.solution }; } };
if (values.data) {
  const skipped: { id: string; reason: string }[] = [];
  const rows = await parquetTrainSamples(values.data, skipped, { subset: Number(values.subset), seed: cfg.seed });
  if (skipped.length) console.error(`${values.data}: skipped ${skipped.length} malformed rows (first: ${skipped[0].id}: ${skipped[0].reason})`);
  data = { size: rows.length, get: i => rows[i] };
}
fs.mkdirSync(cfg.outDir, { recursive: true });
fs.writeFileSync(path.join(cfg.outDir, 'config.json'), JSON.stringify(cfg, null, 2));
const nEval = values.data ? 0 : Number(values.eval);
// the held-out measure uses the DPAD reward (with CLIP) for both variants, so the figures compare
const evalScorer = nEval ? scorer ?? loadScorerFrom(values.weights!) : null;
const sam = nEval ? loadSegmenterModelFrom(values.weights!) : null;
const measure = async (when: string) => {
  const r = await evaluateOnWorld(policy, sam!, evalScorer, { split: 'test', n: nEval });
  console.log(`${when}: test reward ${r.reward.toFixed(3)}  gIoU ${(r.gIoU * 100).toFixed(1)}  cIoU ${(r.cIoU * 100).toFixed(1)}  (${nEval} samples)`);
  return r;
};
const baFile = path.join(cfg.outDir, 'before_after.json');
const prior = fs.existsSync(baFile) && !values.fresh ? JSON.parse(fs.readFileSync(baFile, 'utf8')) : null;
const before = nEval ? prior?.before ?? (await measure('before')) : null;
if (before) writeJsonAtomic(baFile, { before });
const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer, data });
const logs = await trainer.run({ fresh: values.fresh });
const last = logs[logs.length - 1];
console.log(`trained to step ${trainer.step}/${trainer.totalSteps}; last mean reward ${last?.reward.mean.toFixed(3) ?? '-'}; logs, curves and checkpoints in ${cfg.outDir}`);
if (before) {
  const after = await measure('after');
  writeJsonAtomic(baFile, { before, after, steps: trainer.step, config: values.config ?? null });
  console.log(`held-out test (${nEval} samples): reward ${before.reward.toFixed(3)} -> ${after.reward.toFixed(3)}, gIoU ${(before.gIoU * 100).toFixed(1)} -> ${(after.gIoU * 100).toFixed(1)}; ${baFile}`);
}
