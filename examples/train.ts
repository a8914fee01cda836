/**
 * GRPO training in one process:
 *   npx tsx examples/train.ts [--config train.json] [--weights weights/demo] [--out runs/grpo] [--fresh]
 * The config's fields (src/rl/config.ts) default to the paper's. Without --data the embedded world's
 * train split is used; with --data, a Seg-Zero training parquet (see README).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { worldSample } from '../src/data/world/generator.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom } from '../src/pipeline/bundle.ts';
import { readTrainConfig, trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer, type TrainDataset } from '../src/rl/trainer.ts';
import { parquetTrainSamples } from '../src/data/parquet.ts';

const { values } = parseArgs({ options: {
  config: { type: 'string' }, weights: { type: 'string', default: DEFAULT_WEIGHTS }, out: { type: 'string' },
  fresh: { type: 'boolean', default: false }, 'world-size': { type: 'string', default: '512' }, data: { type: 'string' }, subset: { type: 'string', default: '3000' },
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
const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer, data });
const logs = await trainer.run({ fresh: values.fresh });
const last = logs[logs.length - 1];
console.log(`trained to step ${trainer.step}/${trainer.totalSteps}; last mean reward ${last?.reward.mean.toFixed(3) ?? '-'}; logs, curves and checkpoints in ${cfg.outDir}`);
