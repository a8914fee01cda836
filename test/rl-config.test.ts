import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_REWARD_CONFIG } from '../src/rewards/registry.ts';
import { DEFAULT_ADAMW } from '../src/optim/adamw.ts';
import { clearCheckpoints, removeStaleTemps } from '../src/rl/checkpoint.ts';
import { configDifferences, DEFAULT_TRAIN_CONFIG, readTrainConfig, RESUME_NEUTRAL_FIELDS, TRAIN_SCHEMA, trainConfig } from '../src/rl/config.ts';
import { DEFAULT_GRPO_LOSS } from '../src/rl/loss.ts';
import { readStepLog, trimStepLog } from '../src/rl/runlog.ts';
import { defaultsOf } from '../src/util/schema.ts';

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));
const err = (partial: unknown) => {
  try {
    trainConfig(partial as never, 'runs/x.json');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`no error for ${JSON.stringify(partial)}`);
};

test("the issue's training-config cases are refused with the file, the field and the problem", () => {
  assert.is(err({ stpes: 2 }), "runs/x.json: unknown key 'stpes' (did you mean 'steps'?)");
  assert.is(err({ temperature: 0 }), "runs/x.json: 'temperature' must be a number > 0 (got 0): the logits are divided by it, so 0 gives NaN log-probs (for near-greedy sampling use a small value such as 0.1)");
  assert.is(err({ rewards: { weights: { iou: '1' } } }), "runs/x.json: 'rewards.weights.iou' must be a finite number (got \"1\")");
  assert.is(err({ steps: 2.5 }), "runs/x.json: 'steps' must be an integer >= 0 or null (got 2.5)");
  assert.is(err({ samplesPerPrompt: 1 }), "runs/x.json: 'samplesPerPrompt' must be an integer >= 2 (got 1): with 1 sample per prompt every advantage is zero (GRPO normalizes each reward within its prompt's group), so nothing is learned");
});

test('unknown keys inside rewards and rewards.weights, enums, counts and ranges', () => {
  assert.is(err({ rewards: { varaint: 'dpad' } }), "runs/x.json: unknown key 'rewards.varaint' (did you mean 'rewards.variant'?)");
  assert.is(err({ rewards: { weights: { iuo: 1 } } }), "runs/x.json: unknown key 'rewards.weights.iuo' (did you mean 'rewards.weights.iou'?)");
  assert.is(err({ rewards: { variant: 'seg-zero' } }), "runs/x.json: 'rewards.variant' must be 'dpad' or 'baseline' (got \"seg-zero\")");
  assert.is(err({ rewards: { discriminative: 'binnary' } }), "runs/x.json: 'rewards.discriminative' must be one of 'binary', 'difference' or 'scaled' (got \"binnary\"; did you mean 'binary'?)");
  assert.is(err({ klType: 'low_var' }), "runs/x.json: 'klType' must be one of 'kl', 'abs', 'mse' or 'low_var_kl' (got \"low_var\"; did you mean 'low_var_kl'?)");
  assert.is(err({ stepCount: 'all' }), "runs/x.json: 'stepCount' must be 'verl' or 'epoch' (got \"all\")");
  assert.is(err({ promptsPerStep: 0 }), "runs/x.json: 'promptsPerStep' must be a positive integer (got 0)");
  assert.is(err({ checkpointEvery: 1.5 }), "runs/x.json: 'checkpointEvery' must be a positive integer (got 1.5)");
  assert.is(err({ lr: -1 }), "runs/x.json: 'lr' must be a number >= 0 (got -1)");
  assert.is(err({ topP: 0 }), "runs/x.json: 'topP' must be a number in (0, 1] (got 0)");
  assert.is(err({ betas: [0.9, 1] }), "runs/x.json: 'betas' must be a list of 2 numbers, each in [0, 1) (got [0.9,1])");
  assert.is(err({ freezeVision: 'no' }), "runs/x.json: 'freezeVision' must be true or false (got \"no\")");
  assert.is(err({ promptsPerStep: 3, samplesPerPrompt: 2, microBatch: 4 }), "runs/x.json: 'microBatch' (4) must divide promptsPerStep x samplesPerPrompt (6), as veRL requires");
  assert.is(trainConfig({ steps: null }).steps, null);
  assert.is(trainConfig({ steps: 0 }).steps, 0);
  assert.is(trainConfig({ rewards: { variant: 'baseline' } }).rewards.discriminative, 'binary', 'a partial rewards object keeps the other defaults');
});

test('readTrainConfig names the file: unreadable, bad JSON (with line and column), not an object', () => {
  const d = tmp('dpad-cfg-');
  const f = path.join(d, 'x.json');
  fs.writeFileSync(f, '{\n  "steps": 2,\n}\n');
  assert.throws(() => readTrainConfig(f), (e: Error) => e.message.startsWith(`${f}: invalid JSON at line 3, column 1 (`) && e.message.endsWith(')'));
  fs.writeFileSync(f, '{"steps": }');
  assert.throws(() => readTrainConfig(f), (e: Error) => e.message.startsWith(`${f}: invalid JSON (`));
  fs.writeFileSync(f, '[1, 2]');
  assert.throws(() => readTrainConfig(f), (e: Error) => e.message === `${f}: the config must be a JSON object (got [1,2])`);
  fs.writeFileSync(f, '{"stpes": 2}');
  assert.throws(() => readTrainConfig(f), (e: Error) => e.message === `${f}: unknown key 'stpes' (did you mean 'steps'?)`);
  const missing = path.join(d, 'none.json');
  assert.throws(() => readTrainConfig(missing), (e: Error) => e.message.startsWith(`${missing}: cannot read the training config (ENOENT`));
  // the shipped config is valid
  const world = readTrainConfig('examples/configs/world.json');
  assert.is(world.steps, 24); assert.is(world.rewards.variant, 'dpad'); assert.is(world.klCoef, DEFAULT_TRAIN_CONFIG.klCoef);
});

test('one table of defaults: the schema; the loss, the optimizer and the rewards read from it', () => {
  assert.equal(DEFAULT_TRAIN_CONFIG, defaultsOf(TRAIN_SCHEMA));
  assert.equal(trainConfig({}), DEFAULT_TRAIN_CONFIG);
  assert.ok(Object.isFrozen(DEFAULT_TRAIN_CONFIG) && Object.isFrozen(DEFAULT_TRAIN_CONFIG.rewards.weights));
  const c = trainConfig({});
  c.betas[0] = 0.5;
  c.rewards.weights.iou = 2;
  assert.is(DEFAULT_TRAIN_CONFIG.betas[0], 0.9, 'trainConfig returns a fresh value');
  assert.is(trainConfig({}).rewards.weights.iou, 1);
  const d = DEFAULT_TRAIN_CONFIG;
  assert.equal(DEFAULT_GRPO_LOSS, { clipRatio: d.clipRatio, klCoef: d.klCoef, klType: d.klType, entropyCoef: d.entropyCoef });
  assert.equal(DEFAULT_ADAMW, { lr: d.lr, betas: d.betas, eps: d.eps, weightDecay: d.weightDecay });
  assert.equal(d.rewards, DEFAULT_REWARD_CONFIG);
  // the released run's values
  assert.is(d.lr, 1e-6); assert.is(d.klCoef, 5e-3); assert.is(d.samplesPerPrompt, 8); assert.is(d.steps, null);
});

test('configDifferences: fields that change the run are named (dotted), neutral ones and missing ones are not', () => {
  const cur = trainConfig({ lr: 1e-3, outDir: 'runs/b', checkpointEvery: 3, steps: 10, rewards: { weights: { iou: 2 } } });
  const saved = JSON.parse(JSON.stringify(trainConfig({ lr: 1e-4, outDir: 'runs/a', checkpointEvery: 1, steps: 4, stepCount: 'epoch', maxPromptTokens: 50 })));
  assert.equal(configDifferences(saved, cur), [{ field: 'lr', saved: 1e-4, current: 1e-3 }, { field: 'rewards.weights.iou', saved: 1, current: 2 }]);
  assert.equal(configDifferences(JSON.parse(JSON.stringify(cur)), cur), []);
  const old = JSON.parse(JSON.stringify(cur));
  delete old.stepCount; delete old.freezeVision; // a checkpoint from before these fields existed
  assert.equal(configDifferences(old, cur), []);
  assert.equal(configDifferences({ ...old, betas: [0.9, 0.99] }, cur), [{ field: 'betas', saved: [0.9, 0.99], current: [0.9, 0.999] }]);
  assert.equal([...RESUME_NEUTRAL_FIELDS], ['outDir', 'checkpointEvery', 'steps', 'stepCount', 'maxPromptTokens']);
});

test('step log: a resumed step is logged once; lines cut by a kill and entries past the checkpoint are dropped', () => {
  const f = path.join(tmp('dpad-log-'), 'log.jsonl');
  assert.is(trimStepLog(f, 3), 0, 'no log yet');
  fs.writeFileSync(f, [1, 2, 3, 2, 3, 4].map(s => JSON.stringify({ step: s, v: s * 10 })).join('\n') + '\n{"step": 5, "v"');
  assert.equal(readStepLog(f).entries.map(e => e.step), [1, 2, 3, 4]);
  assert.is(readStepLog(f).duplicates, 2); assert.is(readStepLog(f).bad, 1);
  assert.is(trimStepLog(f, 2), 5);
  assert.is(fs.readFileSync(f, 'utf8'), '{"step":1,"v":10}\n{"step":2,"v":20}\n');
  assert.is(trimStepLog(f, 2), 0, 'nothing more to drop');
  assert.is(trimStepLog(f, 0), 2, 'a restart from scratch keeps nothing');
  assert.is(fs.readFileSync(f, 'utf8'), '');
});

test('stale checkpoint temp folders are removed; those of a running process and complete checkpoints stay', () => {
  const d = tmp('dpad-ck-');
  const dead = 2 ** 22 + 12345; // above Linux's pid_max default: no such process
  fs.mkdirSync(path.join(d, `.step-000004.tmp-${dead}`));
  fs.writeFileSync(path.join(d, `.step-000004.tmp-${dead}`, 'model.safetensors'), 'partial');
  fs.writeFileSync(path.join(d, `.latest.tmp-${dead}-1700000000000-abc123`), 'step-000004\n');
  fs.mkdirSync(path.join(d, `.step-000008.tmp-${process.ppid}`)); // a live process (our parent) may be saving
  fs.mkdirSync(path.join(d, 'step-000002'));
  fs.writeFileSync(path.join(d, 'latest'), 'step-000002\n');
  assert.equal(removeStaleTemps(d).sort(), [`.latest.tmp-${dead}-1700000000000-abc123`, `.step-000004.tmp-${dead}`]);
  assert.equal(fs.readdirSync(d).sort(), [`.step-000008.tmp-${process.ppid}`, 'latest', 'step-000002']);
  assert.equal(removeStaleTemps(path.join(d, 'nothing-here')), []);
  assert.equal(clearCheckpoints(d).sort(), [`.step-000008.tmp-${process.ppid}`, 'latest', 'step-000002']);
  assert.equal(fs.readdirSync(d), []);
});

test("the lora section: absent or null is full fine-tuning; an object takes PEFT's defaults; its fields are checked", () => {
  assert.is(trainConfig({}).lora, null);
  assert.is(DEFAULT_TRAIN_CONFIG.lora, null);
  assert.equal(trainConfig({ lora: {} }).lora, { r: 8, alpha: 16, dropout: 0, rslora: false, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], vision: false });
  assert.equal(trainConfig({ lora: { r: 4, targetModules: ['q_proj'] } }).lora?.targetModules, ['q_proj']);
  assert.is(err({ lora: { apha: 8 } }), "runs/x.json: unknown key 'lora.apha' (did you mean 'lora.alpha'?)");
  assert.is(err({ lora: { rank: 8 } }), "runs/x.json: unknown key 'lora.rank' (the keys of 'lora' are r, alpha, dropout, rslora, targetModules, vision)");
  assert.is(err({ lora: { r: 0 } }), "runs/x.json: 'lora.r' must be a positive integer (got 0)");
  assert.is(err({ lora: { alpha: 0 } }), "runs/x.json: 'lora.alpha' must be a number > 0 (got 0)");
  assert.is(err({ lora: { dropout: 1 } }), "runs/x.json: 'lora.dropout' must be a number in [0, 1) (got 1)");
  assert.is(err({ lora: { targetModules: 'q_proj' } }), "runs/x.json: 'lora.targetModules' must be a list of non-empty strings, without repeats (got \"q_proj\")");
  assert.is(err({ lora: { targetModules: ['q_proj', 'q_proj'] } }), "runs/x.json: 'lora.targetModules[1]' repeats \"q_proj\" (entry 0)");
  assert.is(err({ lora: true }), "runs/x.json: 'lora' must be an object or null (got true)");
  assert.is(err({ lora: { vision: true }, freezeVision: true }), "runs/x.json: 'lora.vision' true needs 'freezeVision' false (a frozen vision tower is run once per prompt, without gradients)");
  assert.is(err({ lora: { targetModules: [] } }), "runs/x.json: 'lora.targetModules' is empty and 'lora.vision' is false: no module would get an adapter");
  assert.equal(trainConfig({ lora: { targetModules: [], vision: true } }).lora?.vision, true);
  // resuming: LoRA switched on or off is one difference, 'lora'; a changed field inside it is named
  const full = trainConfig({});
  const lora = trainConfig({ lora: { r: 4 } });
  assert.equal(configDifferences(full, lora), [{ field: 'lora', saved: null, current: lora.lora }]);
  assert.equal(configDifferences(lora, full), [{ field: 'lora', saved: lora.lora, current: null }]);
  assert.equal(configDifferences(lora, trainConfig({ lora: { r: 8 } })), [{ field: 'lora.r', saved: 4, current: 8 }]);
  assert.equal(configDifferences(lora, trainConfig({ lora: { r: 4, targetModules: ['q_proj'] } })).map(d => d.field), ['lora.targetModules']);
  const { lora: _omit, ...older } = full;
  assert.equal(configDifferences(older, lora), [], 'a checkpoint older than the field is not compared');
});

test.run();
