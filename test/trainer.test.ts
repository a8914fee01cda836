import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer } from '../src/rl/trainer.ts';
import { tinyPolicy, tinyScorer, worldDataset } from './helpers/world.ts';

const cfg = (outDir: string) => trainConfig({
  // microBatch and freezeVision: the defaults (1, false)
  seed: 3, promptsPerStep: 2, samplesPerPrompt: 2, maxResponseTokens: 6, lr: 1e-3, steps: 3, checkpointEvery: 1, outDir,
});

function snapshot(m: { namedParameters(): Map<string, tf.Variable> }): Map<string, Float32Array> {
  return new Map([...m.namedParameters()].map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
}

test('two GRPO steps end to end: finite loss, parameters change, no tensors leak', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-train-'));
  const { policy, reference } = tinyPolicy(1);
  const scorer = tinyScorer();
  const t = new GrpoTrainer({ config: { ...cfg(out), steps: 2 }, policy, reference, scorer, data: worldDataset(8) });
  const before = snapshot(policy.model);
  const l1 = await t.trainStep();
  const n1 = tf.memory().numTensors;
  const l2 = await t.trainStep();
  assert.is(tf.memory().numTensors, n1, 'numTensors is flat across steps');
  for (const l of [l1, l2]) {
    assert.ok(Number.isFinite(l.loss.total), `loss ${l.loss.total}`);
    assert.is(l.skipped, null);
    assert.ok('discriminative' in l.reward.components);
    assert.ok(Number.isFinite(l.gradNorm));
  }
  const after = snapshot(policy.model);
  let changed = 0;
  for (const [k, v] of before) if (v.some((x, i) => x !== after.get(k)![i])) changed++;
  assert.ok(changed > 0, 'some parameters changed');
  // the default trains the whole policy, the vision tower included (as the released run)
  const vis = [...before.keys()].filter(k => k.startsWith('visual.'));
  assert.ok(vis.length > 0);
  assert.ok(vis.some(k => before.get(k)!.some((x, i) => x !== after.get(k)![i])), 'the vision tower is trained by default');
  policy.model.dispose(); reference.dispose(); scorer.dispose(); t.optimizer.dispose();
});

test('freezeVision: true keeps the vision tower untouched while the decoder trains', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-frozen-'));
  const { policy, reference } = tinyPolicy(4);
  const t = new GrpoTrainer({ config: { ...cfg(out), steps: 1, freezeVision: true, rewards: { ...cfg(out).rewards, variant: 'baseline' } }, policy, reference, scorer: null, data: worldDataset(4) });
  const before = snapshot(policy.model);
  const log = await t.trainStep();
  assert.is(log.skipped, null);
  const after = snapshot(policy.model);
  const keys = [...before.keys()];
  const moved = (k: string) => before.get(k)!.some((x, i) => x !== after.get(k)![i]);
  assert.ok(keys.filter(k => k.startsWith('visual.')).every(k => !moved(k)), 'the frozen vision tower is untouched');
  assert.ok(keys.filter(k => !k.startsWith('visual.')).some(moved), 'the decoder is trained');
  policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
});

test('a run killed after a checkpoint resumes to the same parameters as an uninterrupted run', async () => {
  const a = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-run-a-'));
  const b = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-run-b-'));
  const data = worldDataset(6);
  const run = async (dir: string, maxSteps?: number) => {
    const { policy, reference } = tinyPolicy(2);
    const t = new GrpoTrainer({ config: { ...cfg(dir), rewards: { ...cfg(dir).rewards, variant: 'baseline' } }, policy, reference, scorer: null, data });
    await t.run({ maxSteps });
    const snap = snapshot(policy.model);
    policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
    return { snap, step: t.step };
  };
  const full = await run(a);
  assert.is(full.step, 3);
  const killed = await run(b, 2); // stops after step 2's checkpoint, as a crash would
  assert.is(killed.step, 2);
  assert.ok(fs.existsSync(path.join(b, 'checkpoints', 'step-000002', 'optimizer.safetensors')));
  const resumed = await run(b);
  assert.is(resumed.step, 3);
  for (const [k, v] of full.snap) assert.equal(Array.from(resumed.snap.get(k)!), Array.from(v), `parameter ${k} differs after resume`);
  const log = fs.readFileSync(path.join(b, 'log.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l));
  assert.equal(log.map((l: { step: number }) => l.step), [1, 2, 3]);
  for (const f of ['reward.svg', 'reward.png', 'length.svg', 'length.png']) assert.ok(fs.existsSync(path.join(b, f)), f);
});

test('killed between a step and its checkpoint, the resumed run logs each step once; a config change is refused; --fresh starts over', async () => {
  const a = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-log-a-'));
  const b = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-log-b-'));
  const data = worldDataset(8);
  const conf = (dir: string, extra: object = {}) => ({ ...cfg(dir), steps: 4, checkpointEvery: 2, rewards: { ...cfg(dir).rewards, variant: 'baseline' as const }, ...extra });
  const run = async (dir: string, opts: { maxSteps?: number; fresh?: boolean } = {}, extra: object = {}) => {
    const { policy, reference } = tinyPolicy(5);
    const t = new GrpoTrainer({ config: conf(dir, extra), policy, reference, scorer: null, data });
    try {
      await t.run(opts);
      return { snap: snapshot(policy.model), step: t.step };
    } finally {
      policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
    }
  };
  const steps = (dir: string) => fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l) as { step: number; reward: { mean: number } });
  const full = await run(a);
  assert.equal(steps(a).map(l => l.step), [1, 2, 3, 4]);
  // killed after step 3 was logged: its last checkpoint is step 2's
  await run(b, { maxSteps: 3 });
  assert.equal(steps(b).map(l => l.step), [1, 2, 3]);
  assert.is(fs.readFileSync(path.join(b, 'checkpoints', 'latest'), 'utf8').trim(), 'step-000002');
  // and a save was cut short: its temp folder is left behind
  const orphan = path.join(b, 'checkpoints', `.step-000003.tmp-${2 ** 22 + 7}`);
  fs.mkdirSync(orphan);
  fs.writeFileSync(path.join(orphan, 'model.safetensors'), 'partial');
  const resumed = await run(b);
  assert.is(resumed.step, 4);
  assert.not.ok(fs.existsSync(orphan), 'the orphaned temp folder is removed at start');
  assert.equal(steps(b).map(l => l.step), [1, 2, 3, 4], 'each step once after the resume');
  assert.equal(steps(b).map(l => l.reward.mean), steps(a).map(l => l.reward.mean), 'the re-run steps are the uninterrupted run\'s');
  for (const [k, v] of full.snap) assert.equal(Array.from(resumed.snap.get(k)!), Array.from(v), `parameter ${k} differs after resume`);
  // resumed from an earlier checkpoint than the log's end: steps 3 and 4 are re-run and logged once
  fs.writeFileSync(path.join(b, 'checkpoints', 'latest'), 'step-000002\n');
  await run(b);
  assert.equal(steps(b).map(l => l.step), [1, 2, 3, 4]);
  // a different config that changes the run is refused, naming the field; neutral fields may differ
  const ck = path.join(b, 'checkpoints', 'step-000004');
  let msg = '';
  try {
    await run(b, {}, { lr: 1e-4 });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.is(msg, `${ck}: the checkpoint was made with lr 0.001, this run has 0.0001 (field 'lr'); use --fresh or the same config`);
  assert.is((await run(b, {}, { steps: 5, checkpointEvery: 5 })).step, 5, 'steps and checkpointEvery may change: the run is extended');
  assert.equal(steps(b).map(l => l.step), [1, 2, 3, 4, 5]);
  // --fresh starts over with the new config: the old checkpoints and log entries are gone
  await run(b, { fresh: true, maxSteps: 1 }, { lr: 1e-4 });
  assert.equal(steps(b).map(l => l.step), [1]);
  assert.equal(fs.readdirSync(path.join(b, 'checkpoints')), []);
});

test('log-probs, ratio and entropy are of the tempered distribution the rollouts come from (as veRL)', async () => {
  const entropyAt = async (temperature: number) => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-temp-'));
    const { policy, reference } = tinyPolicy(7);
    // sharpen the random policy's logits (final norm x 30) so that temperature changes its entropy
    const norm = policy.model.namedParameters().get('model.norm.weight')!;
    norm.assign(tf.mul(norm, 30));
    const t = new GrpoTrainer({ config: { ...cfg(out), steps: 1, temperature, rewards: { ...cfg(out).rewards, variant: 'baseline' } }, policy, reference, scorer: null, data: worldDataset(4) });
    const log = await t.trainStep();
    policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
    assert.ok(Math.abs(log.loss.ppoKl) < 1e-6, 'one PPO epoch: logp_old = logp');
    return log.loss.entropy!;
  };
  const [cold, warm] = [await entropyAt(0.25), await entropyAt(1)];
  assert.ok(cold < warm - 0.05, `entropy at T 0.25 (${cold}) is below entropy at T 1 (${warm})`);
});

test('a NaN in the loss skips the update and is logged', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-nan-'));
  const { policy, reference } = tinyPolicy(6);
  const t = new GrpoTrainer({ config: { ...cfg(out), steps: 1, rewards: { ...cfg(out).rewards, variant: 'baseline' }, klCoef: 0 }, policy, reference: null, scorer: null, data: worldDataset(4) });
  const norm = policy.model.namedParameters().get('model.norm.weight')!;
  norm.assign(tf.fill(norm.shape, NaN));
  const q = policy.model.namedParameters().get('model.layers.0.mlp.up_proj.weight')!;
  const before = Float32Array.from(q.dataSync() as Float32Array);
  const log = await t.trainStep();
  assert.match(log.skipped ?? '', /non-finite/);
  assert.equal(Array.from(q.dataSync()), Array.from(before), 'no update was applied');
  policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
});

test('configuration is checked and the dpad reward requires a scorer', () => {
  assert.throws(() => trainConfig({ samplesPerPrompt: 1 }), /'samplesPerPrompt' must be an integer >= 2 \(got 1\): with 1 sample per prompt every advantage is zero/);
  assert.throws(() => trainConfig({ lr: -1 }), /'lr' must be a number >= 0/);
  const { policy, reference } = tinyPolicy(3);
  // a config built in code is checked by the trainer too
  assert.throws(() => new GrpoTrainer({ config: { ...trainConfig({}), temperature: 0 }, policy, reference, scorer: null, data: worldDataset(2) }), /^trainer config: 'temperature' must be a number > 0 \(got 0\)/);
  assert.throws(() => new GrpoTrainer({ config: trainConfig({}), policy, reference, scorer: null, data: worldDataset(2) }), /needs a CLIP scorer/);
  assert.throws(() => trainConfig({ promptsPerStep: 3, samplesPerPrompt: 2, microBatch: 4 }), /'microBatch' \(4\) must divide promptsPerStep x samplesPerPrompt \(6\), as veRL requires/);
  assert.throws(() => trainConfig({ stepCount: 'all' as 'epoch' }), /'stepCount' must be 'verl' or 'epoch' \(got "all"\)/);
  assert.throws(() => trainConfig({ stpes: 2 } as never, 'runs/x.json'), /^runs\/x.json: unknown key 'stpes' \(did you mean 'steps'\?\)$/);
  const d = trainConfig({});
  assert.is(d.promptsPerStep, 16); assert.is(d.samplesPerPrompt, 8); assert.is(d.lr, 1e-6); assert.is(d.klCoef, 5e-3);
  // the released run's: micro-batch 1, the whole policy trained, len(dataloader) - 1 updates
  assert.is(d.microBatch, 1); assert.is(d.freezeVision, false); assert.is(d.stepCount, 'verl'); assert.is(d.steps, null);
  policy.model.dispose(); reference.dispose();
});

test.run();
