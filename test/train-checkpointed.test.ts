/**
 * The training config's `checkpointed` flag: the trainer's gradient pass goes through the
 * gradient-checkpointed pass (models/qwen2_5_vl/checkpointed.ts: no plain model.forward at all),
 * and one GRPO step gives the plain pass's loss, gradients and updated weights within 1e-5, for
 * full fine-tuning (vision tower trained) and for LoRA with seeded dropout. The flag is checked
 * like every config field, and a checkpoint saved before it existed still resumes.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyLora } from '../src/models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { configDifferences, DEFAULT_TRAIN_CONFIG, readTrainConfig, trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer, type StepLog } from '../src/rl/trainer.ts';
import type { RewardFn } from '../src/rewards/registry.ts';
import { randomizeAdapters } from './helpers/lora.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const LORA = { r: 4, alpha: 8, dropout: 0.2 };
// a reward that differs within a group (a random policy's format rewards are all 0): non-zero advantages
const REWARD: RewardFn[] = [{ name: 'length', fn: c => ({ value: (c.parsed.text.length % 7) / 7 }) }];
const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i])), 0);

interface StepRun {
  log: StepLog;
  /** the step's gradients by parameter name */
  grads: Map<string, Float32Array>;
  /** the trainable parameters before and after the step */
  before: Map<string, Float32Array>;
  after: Map<string, Float32Array>;
  /** model.forward calls made inside the trainer's gradients() (the plain pass's full-length forwards) */
  plainForwards: number;
  /** tensors left by the step beyond the AdamW moments */
  leaked: number;
}

const values = (m: Qwen2_5_VL) => new Map([...m.trainableParameters()].map(([n, v]) => [n, Float32Array.from(v.dataSync() as Float32Array)]));

/** One GRPO step of the tiny world policy (seeded weights), full fine-tuning or LoRA, plain or checkpointed. */
async function oneStep(checkpointed: boolean, lora: boolean): Promise<StepRun> {
  const { policy, reference } = tinyPolicy(7);
  const model = policy.model;
  if (lora) {
    reference.dispose();
    applyLora(model, LORA);
    randomizeAdapters(model, 3, 0.2); // B != 0: non-zero dA and a non-zero KL to the base
  }
  const config = trainConfig({
    seed: 4, promptsPerStep: 2, samplesPerPrompt: 2, maxResponseTokens: 6, microBatch: 2, lr: 1e-4, klCoef: 0.05, steps: 1,
    outDir: tmp('dpad-ckpt-train-'), rewards: { variant: 'baseline' }, checkpointed, lora: lora ? LORA : null,
  });
  const t = new GrpoTrainer({ config, policy, reference: lora ? null : reference, scorer: null, data: worldDataset(4), rewards: REWARD });
  let inGradients = false;
  let plainForwards = 0;
  const forward = model.forward.bind(model);
  model.forward = ((...a: Parameters<Qwen2_5_VL['forward']>) => {
    if (inGradients) plainForwards++;
    return forward(...a);
  }) as Qwen2_5_VL['forward'];
  const grads = new Map<string, Float32Array>();
  const gradients = t.gradients.bind(t);
  t.gradients = (...a: Parameters<GrpoTrainer['gradients']>) => {
    inGradients = true;
    try {
      const pg = gradients(...a);
      for (const [n, g] of pg.grads) grads.set(n, Float32Array.from(g.dataSync() as Float32Array));
      return pg;
    } finally {
      inGradients = false;
    }
  };
  const before = values(model);
  const n0 = tf.memory().numTensors;
  const log = await t.trainStep();
  const leaked = tf.memory().numTensors - n0 - 2 * before.size;
  const after = values(model);
  model.dispose(); t.optimizer.dispose();
  if (!lora) reference.dispose();
  return { log, grads, before, after, plainForwards, leaked };
}

function assertSameStep(plain: StepRun, ck: StepRun, what: string): void {
  assert.ok(plain.plainForwards > 0, `${what}: the plain pass runs model.forward`);
  assert.is(ck.plainForwards, 0, `${what}: checkpointed: the gradient pass never runs the plain full-length forward`);
  for (const l of [plain.log, ck.log]) assert.is(l.skipped, null);
  assert.is(ck.leaked, 0, `${what}: checkpointed: the step leaves only the AdamW moments`);
  assert.is(plain.leaked, 0, `${what}: plain: the step leaves only the AdamW moments`);
  // the rollouts are drawn before any update from the same weights and seed: the same samples
  assert.equal(ck.log.responseLength, plain.log.responseLength);
  assert.equal(ck.log.reward, plain.log.reward);
  assert.ok(plain.log.advantage.max > 0, `${what}: non-zero advantages`);
  for (const k of ['total', 'pg', 'kl', 'entropy', 'clipFrac', 'ppoKl'] as const) {
    const a = plain.log.loss[k] ?? 0, b = ck.log.loss[k] ?? 0;
    assert.ok(Math.abs(a - b) <= 1e-5, `${what}: loss.${k} ${a} (plain) vs ${b} (checkpointed)`);
  }
  assert.ok(Math.abs(plain.log.gradNorm - ck.log.gradNorm) <= 1e-5 * Math.max(1, plain.log.gradNorm), `${what}: gradNorm ${plain.log.gradNorm} vs ${ck.log.gradNorm}`);
  assert.equal([...ck.grads.keys()].sort(), [...plain.grads.keys()].sort());
  let gWorst = 0, wWorst = 0, moved = 0;
  for (const [n, g] of plain.grads) gWorst = Math.max(gWorst, maxAbsDiff(g, ck.grads.get(n)!));
  for (const [n, w] of plain.after) {
    wWorst = Math.max(wWorst, maxAbsDiff(w, ck.after.get(n)!));
    moved = Math.max(moved, maxAbsDiff(w, plain.before.get(n)!));
  }
  assert.ok(gWorst <= 1e-5, `${what}: gradients differ by ${gWorst}`);
  // AdamW's first step moves each weight by ~lr (1e-4): a gradient of another sign would differ by 2e-4
  assert.ok(moved > 5e-5, `${what}: the step moved the weights (by at most ${moved})`);
  assert.ok(wWorst <= 1e-5, `${what}: updated weights differ by ${wWorst}`);
}

test('full fine-tuning: a GRPO step with checkpointed true gives the plain step\'s loss, gradients and weights within 1e-5', async () => {
  const plain = await oneStep(false, false);
  const ck = await oneStep(true, false);
  assert.ok([...ck.grads.keys()].some(n => n.startsWith('visual.')), 'the vision tower is trained (the checkpointed pass recomputes embed)');
  assertSameStep(plain, ck, 'full');
});

test('LoRA with dropout: a GRPO step with checkpointed true gives the plain step\'s loss, gradients and adapters within 1e-5', async () => {
  const plain = await oneStep(false, true);
  const ck = await oneStep(true, true);
  assert.ok(plain.log.loss.kl > 0, `a non-zero KL to the base (adapters off): ${plain.log.loss.kl}`);
  assert.ok(plain.log.loss.ppoKl !== 0, 'dropout is on in the gradient pass (logp != logp_old)');
  assertSameStep(plain, ck, 'lora');
});

test('the checkpointed flag: default false, a boolean, and an older checkpoint without it still resumes', () => {
  assert.is(DEFAULT_TRAIN_CONFIG.checkpointed, false);
  assert.is(trainConfig({ checkpointed: true }).checkpointed, true);
  assert.throws(() => trainConfig({ checkpointed: 'yes' } as never, 'runs/x.json'),
    (e: Error) => e.message === "runs/x.json: 'checkpointed' must be true or false (got \"yes\")");
  const f = path.join(tmp('dpad-ckpt-cfg-'), 'train.json');
  fs.writeFileSync(f, JSON.stringify({ lora: {}, checkpointed: 'yes' }));
  assert.throws(() => readTrainConfig(f), (e: Error) => e.message === `${f}: 'checkpointed' must be true or false (got "yes")`);
  fs.writeFileSync(f, JSON.stringify({ lora: {}, checkpointed: true }));
  assert.is(readTrainConfig(f).checkpointed, true);
  // a checkpoint saved before the field existed: its config lacks it, so it is not compared (the run's value applies)
  const old = JSON.parse(JSON.stringify(DEFAULT_TRAIN_CONFIG)) as Record<string, unknown>;
  delete old.checkpointed;
  assert.equal(configDifferences(old, trainConfig()), []);
  assert.equal(configDifferences(old, trainConfig({ checkpointed: true })), []);
  // a saved value is compared like any field that changes the run's floats (resume is byte-exact)
  assert.equal(configDifferences({ ...old, checkpointed: false }, trainConfig({ checkpointed: true })), [{ field: 'checkpointed', saved: false, current: true }]);
});

test.run();
