/**
 * The extension points, each in a few lines: a new reward is a RewardFn plus a line in a list;
 * the trainer's step runs in named phases and scores through the reward registry; a new dataset
 * kind is a DatasetLoader plus a line in openDataset's list; a new backend is one file that registers
 * a BackendProvider (test/helpers/backend-provider-child.ts, 15 lines).
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DATASET_LOADERS, openDataset, type DatasetLoader } from '../src/data/open.ts';
import { computeReward, REWARDS, type RewardFn } from '../src/rewards/registry.ts';
import { scoreGroup } from '../src/rewards/score.ts';
import { trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer } from '../src/rl/trainer.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const GT = '<box>(12,98),(205,214)</box><points>(30,110),(35,180)</points>';
const GOOD = '<think>x</think><answer>{"bbox": [12,98,205,214], "points_1": [30,110], "points_2": [35,180]}</answer><caption>a red apple</caption>';

// a new reward: one RewardFn (here inline; in src/rewards/ a file) and one line in the list
const brevity: RewardFn = { name: 'brevity', weight: 0.5, fn: c => (c.parsed.text.length < 200 ? { value: 1 } : { value: 0, reason: 'long' }) };

test('a reward is a named function with a weight over one context', async () => {
  const base = computeReward(GOOD, GT, { s1: 0.3, s2: 0.2 });
  const more = computeReward(GOOD, GT, { s1: 0.3, s2: 0.2 }, {}, [...REWARDS, brevity]);
  assert.is(base.total, 6);
  assert.is(more.total, 6.5);
  assert.equal(more.components.brevity, { value: 1 });
  // scoreGroup hands CLIP scores to the rewards that need them: a baseline group asks no scorer
  const [r] = await scoreGroup([GOOD], { image: { width: 1, height: 1, channels: 3, data: new Uint8Array(3) }, solution: GT }, { config: { variant: 'baseline' }, rewards: [...REWARDS, brevity] });
  assert.equal(Object.keys(r.components), ['thinking_format', 'segmentation_format', 'iou', 'box_l1', 'points_l1', 'brevity']);
});

test('the trainer step runs in named phases and scores with its reward list', async () => {
  const { policy, reference } = tinyPolicy(2);
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-phases-'));
  const config = trainConfig({ seed: 1, promptsPerStep: 1, samplesPerPrompt: 2, maxResponseTokens: 4, steps: 1, outDir, rewards: { variant: 'baseline' } as never });
  const t = new GrpoTrainer({ config, policy, reference, scorer: null, data: worldDataset(2), rewards: [brevity] });
  const calls: string[] = [];
  for (const phase of ['prompts', 'rollout', 'score', 'advantages', 'gradients', 'update', 'stepLog'] as const) {
    const f = (t as unknown as Record<string, (...a: unknown[]) => unknown>)[phase].bind(t);
    (t as unknown as Record<string, unknown>)[phase] = (...a: unknown[]) => (calls.push(phase), f(...a));
  }
  const log = await t.trainStep();
  assert.equal(calls, ['prompts', 'rollout', 'score', 'advantages', 'gradients', 'update', 'stepLog']);
  assert.equal(Object.keys(log.reward.components), ['brevity']);
  assert.is(log.reward.mean, 0.5, 'brevity 1 at its weight 0.5');
  policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
});

test('a dataset loader is a file plus a line in openDataset', async () => {
  const toy: DatasetLoader = {
    kind: 'toy', describe: 'toy:<n>', accepts: s => s.startsWith('toy:'),
    train: async s => ({ size: Number(s.slice(4)), get: () => ({ image: { width: 1, height: 1, channels: 3, data: new Uint8Array(3) }, query: 'q', solution: GT }) }),
  };
  const d = await openDataset('toy:3', {}, [toy, ...DATASET_LOADERS]).train();
  assert.is(d.size, 3);
  assert.is((await d.get(0)).solution, GT);
  assert.throws(() => openDataset('toy:3', {}, [toy]).eval(), (e: Error) => e.message === '--data toy:3: a toy dataset cannot evaluate (evaluation needs ground-truth masks)');
  assert.throws(() => openDataset('nope', {}, [toy, ...DATASET_LOADERS]), (e: Error) => e.message === '--data nope: expected toy:<n>, world:<split>[:N], a Seg-Zero .parquet, a refer folder (refs(umd).p + instances.json), or a ReasonSeg folder');
});

test('train and eval open the same specs: world trains and evaluates, a ReasonSeg folder only evaluates', async () => {
  const w = openDataset('world:val:3', { frame: 56 });
  assert.is((await w.train()).size, 3);
  assert.is(w.eval().total, 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-rs-'));
  let msg = '';
  await openDataset(dir).train().catch((e: Error) => (msg = e.message));
  assert.is(msg, `--data ${dir}: a reasonseg dataset cannot train (training needs prompts with a <box>/<points> solution: world:<split>[:N] or a Seg-Zero training .parquet)`);
});

test('a backend is a file: a registered provider is selected by DPAD_BACKEND', () => {
  // a child process: the backend is chosen once per process
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/backend-provider-child.ts'], { encoding: 'utf8', env: { ...process.env, DPAD_BACKEND: 'jscpu' } });
  assert.is(r.status, 0, r.stderr.slice(-1500));
  assert.equal(JSON.parse(r.stdout.trim()), { name: 'cpu', provider: 'the pure-JS kernels, registered as a provider', reason: 'DPAD_BACKEND=jscpu', y: 11 });
});

test.run();
