/**
 * LoRA GRPO in the trainer: only the adapters train (base bit-identical, moments for the adapters
 * only), the reference is the policy with its adapters off (no second model), the gradients are
 * full fine-tuning's restricted to the low-rank update (dA = s G B^T, dB = s A^T G in the held
 * layout, through the real actor loss), and a killed run resumes byte-identically.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { applyLora, loraAdapters, mergedExporter } from '../src/models/qwen2_5_vl/lora.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { isLoraParam } from '../src/nn/lora.ts';
import { trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer } from '../src/rl/trainer.ts';
import { policyGradients } from '../src/rl/update.ts';
import type { RewardFn } from '../src/rewards/registry.ts';
import { randomizeAdapters } from './helpers/lora.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const cfg = (outDir: string, extra: object = {}) => trainConfig({
  seed: 3, promptsPerStep: 2, samplesPerPrompt: 2, maxResponseTokens: 6, lr: 1e-2, steps: 3, checkpointEvery: 1, outDir,
  rewards: { variant: 'baseline' }, lora: { r: 4, alpha: 8 }, ...extra,
});
// a reward that differs within a group (the format rewards are all 0 for a random policy): non-zero advantages
const REWARD: RewardFn[] = [{ name: 'length', fn: c => ({ value: (c.parsed.text.length % 7) / 7 }) }];
const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));

function snapshot(m: { namedParameters(): Map<string, tf.Variable> }, keep: (n: string) => boolean = () => true): Map<string, Float32Array> {
  return new Map([...m.namedParameters()].filter(([k]) => keep(k)).map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
}
const bytesOf = (vs: Iterable<tf.Variable>) => [...vs].reduce((a, v) => a + v.size * 4, 0);

test('a LoRA GRPO step trains the adapters only; the base stays bit-identical; the reference is the base with no second model', async () => {
  const { policy, reference } = tinyPolicy(4);
  reference.dispose();
  const model = policy.model;
  const baseBytes = bytesOf(model.namedParameters().values());
  const m0 = tf.memory();
  const t = new GrpoTrainer({ config: cfg(tmp('dpad-lora-a-')), policy, reference: null, scorer: null, data: worldDataset(8), rewards: REWARD });
  const adapters = [...model.trainableParameters()];
  assert.ok(adapters.length === 2 * 7 * model.config.num_hidden_layers && adapters.every(([n]) => isLoraParam(n)), 'trainable = the decoder adapters');
  const adapterBytes = bytesOf(adapters.map(([, v]) => v));
  const m1 = tf.memory();
  assert.is(m1.numTensors - m0.numTensors, adapters.length, 'constructing the trainer adds the adapters only (no reference copy)');
  assert.is(m1.numBytes - m0.numBytes, adapterBytes);
  const base = snapshot(model, n => !isLoraParam(n));
  const l1 = await t.trainStep();
  const l2 = await t.trainStep();
  for (const l of [l1, l2]) assert.is(l.skipped, null);
  // B starts at 0: step 1's policy is the base exactly, so its KL to the reference is 0; after an update it is not
  assert.is(l1.loss.kl, 0, 'step 1: policy == reference (adapters off)');
  assert.ok(l2.loss.kl > 0, `step 2: the trained adapters move the policy from the reference (kl ${l2.loss.kl})`);
  assert.is(l2.loss.ppoKl, 0, 'no dropout: logp_old = logp exactly');
  const m2 = tf.memory();
  // AdamW's two moments per adapter parameter, nothing for the base; no model-sized allocation
  assert.is(m2.numTensors - m1.numTensors, 2 * adapters.length, 'optimizer moments for the adapters only');
  assert.is(m2.numBytes - m1.numBytes, 2 * adapterBytes);
  assert.ok(m2.numBytes - m0.numBytes < baseBytes / 4, `LoRA state ${m2.numBytes - m0.numBytes} B vs the base's ${baseBytes} B`);
  const st = t.optimizer.state();
  assert.equal([...st.m.keys()].sort(), adapters.map(([n]) => n).sort());
  tf.dispose([...st.m.values(), ...st.v.values()]);
  const after = snapshot(model, n => !isLoraParam(n));
  for (const [k, v] of base) assert.equal(Array.from(after.get(k)!), Array.from(v), `base parameter ${k} changed`);
  assert.ok([...loraAdapters(model).values()].some(a => a.loraB.dataSync().some(x => x !== 0)), 'the adapters trained');
  model.dispose(); t.optimizer.dispose();
});

test('the LoRA gradients through policyGradients are full fine-tuning\'s restricted to the low-rank update (dA = s G B^T, dB = s A^T G)', () => {
  const { policy, reference } = tinyPolicy(11);
  const model = policy.model;
  applyLora(model, { r: 3, alpha: 6 });
  randomizeAdapters(model, 5, 0.3); // B != 0: a policy away from the base, with a non-zero dA
  // the same policy as one plain model: the base with the updates merged in
  const merged = new Qwen2_5_VL(model.config);
  const ex = mergedExporter(model);
  const weights = new Map(ex.names.map(n => [n, ex.get(n)]));
  merged.load(weights);
  tf.dispose([...weights.values()]);
  const B = 4, P = 3, R = 4;
  const lens = [4, 2, 3, 1];
  const pad = model.config.pad_token_id;
  const ids = new Int32Array(B * (P + R)).fill(pad);
  const att = new Int32Array(B * (P + R));
  const mask = new Float32Array(B * R);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < P + lens[b]; j++) { ids[b * (P + R) + j] = 20 + ((b * 5 + j * 7) % 40); att[b * (P + R) + j] = 1; }
    mask.fill(1, b * R, b * R + lens[b]);
  }
  const adv = new Float32Array([1.1, -0.7, 0.4, -0.8]);
  const pack = (start: number, size: number) => ({
    seq: { ids: ids.slice(start * (P + R), (start + size) * (P + R)), batch: size, promptLength: P, responseLength: R, attentionMask: att.slice(start * (P + R), (start + size) * (P + R)) },
    mask: mask.slice(start * R, (start + size) * R), advantages: adv.slice(start, start + size), dispose: () => {},
  });
  const lossCfg = { clipRatio: 0.2, entropyCoef: 1e-3, klCoef: 0.05, klType: 'low_var_kl' as const, temperature: 0.7, microBatch: 2 };
  const lora = policyGradients(model, 'adapters-off', B, pack, lossCfg);
  // the reference 'adapters-off' is the separate base copy, bit for bit
  const withCopy = policyGradients(model, reference, B, pack, lossCfg);
  assert.is(lora.loss, withCopy.loss);
  assert.equal(lora.metrics, withCopy.metrics);
  for (const [n, g] of lora.grads) assert.equal(Array.from(g.dataSync()), Array.from(withCopy.grads.get(n)!.dataSync()), `${n}: adapters-off vs the reference copy`);
  const full = policyGradients(merged, reference, B, pack, lossCfg);
  assert.ok(lora.metrics.klLoss > 1e-5, `a non-zero KL term (${lora.metrics.klLoss})`);
  assert.ok(Math.abs(lora.loss - full.loss) < 1e-5, `loss ${lora.loss} vs full fine-tuning ${full.loss}`);
  assert.ok([...lora.grads.keys()].every(isLoraParam), 'gradients for the adapters only');
  let worst = 0, scale = 0, checked = 0;
  for (const [m, a] of loraAdapters(model)) {
    const G = full.grads.get(`${m}.weight`)!; // held [in, out]
    const [dA, dB] = tf.tidy(() => [
      tf.mul(tf.matMul(G as tf.Tensor2D, a.loraB as tf.Tensor2D, false, true), a.scaling), // [in, r]
      tf.mul(tf.matMul(a.loraA as tf.Tensor2D, G as tf.Tensor2D, true, false), a.scaling), // [r, out]
    ]);
    for (const [got, want] of [[lora.grads.get(`${m}.lora_A.weight`)!, dA], [lora.grads.get(`${m}.lora_B.weight`)!, dB]]) {
      assert.equal(got.shape, want.shape);
      const g = got.dataSync(), w = want.dataSync();
      for (let i = 0; i < g.length; i++) { worst = Math.max(worst, Math.abs(g[i] - w[i])); scale = Math.max(scale, Math.abs(w[i])); }
      checked++;
    }
    tf.dispose([dA, dB]);
  }
  assert.is(checked, 2 * 7 * model.config.num_hidden_layers);
  assert.ok(scale > 0 && worst <= 2e-4 * scale, `LoRA gradient differs from s G B^T / s A^T G by ${worst} (scale ${scale})`);
  tf.dispose([...lora.grads.values(), ...withCopy.grads.values(), ...full.grads.values()]);
  model.dispose(); merged.dispose(); reference.dispose();
});

test('LoRA with dropout: a killed run resumes byte-identically from an adapter-only checkpoint', async () => {
  const a = tmp('dpad-lora-run-a-');
  const b = tmp('dpad-lora-run-b-');
  const data = worldDataset(6);
  const extra = { lora: { r: 4, alpha: 8, dropout: 0.3, targetModules: ['q_proj', 'v_proj', 'down_proj'] } };
  const run = async (dir: string, maxSteps?: number) => {
    const { policy, reference } = tinyPolicy(2);
    reference.dispose();
    const t = new GrpoTrainer({ config: cfg(dir, extra), policy, reference: null, scorer: null, data, rewards: REWARD });
    await t.run({ maxSteps });
    const snap = snapshot(policy.model);
    policy.model.dispose(); t.optimizer.dispose();
    return { snap, step: t.step, logs: t.logs };
  };
  const full = await run(a);
  assert.is(full.step, 3);
  // dropout is on in the gradient pass only: once B != 0 the ratio departs from 1
  assert.ok(full.logs[1].loss.ppoKl !== 0 && full.logs[2].loss.ppoKl !== 0, `dropout in the gradient pass (ppoKl ${full.logs[1].loss.ppoKl})`);
  const killed = await run(b, 2);
  assert.is(killed.step, 2);
  const ck = path.join(b, 'checkpoints', 'step-000002');
  assert.equal(fs.readdirSync(ck).sort(), ['adapter', 'optimizer.safetensors', 'state.json'], 'the adapter, not the base');
  assert.equal(fs.readdirSync(path.join(ck, 'adapter')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const os_ = SafetensorsFile.open(path.join(ck, 'optimizer.safetensors'));
  assert.ok(os_.keys().length === 2 * 2 * 3 * 2 && os_.keys().every(k => isLoraParam(k.slice(2))), 'moments of the adapters only');
  os_.close();
  const resumed = await run(b);
  assert.is(resumed.step, 3);
  for (const [k, v] of full.snap) assert.equal(Array.from(resumed.snap.get(k)!), Array.from(v), `parameter ${k} differs after resume`);
  const log = (d: string) => fs.readFileSync(path.join(d, 'log.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l) as { step: number; loss: { total: number } });
  assert.equal(log(b).map(l => l.step), [1, 2, 3]);
  assert.equal(log(b).map(l => l.loss.total), log(a).map(l => l.loss.total), 'the resumed steps are the uninterrupted run\'s');
  // switching LoRA off on resume is refused, naming the section
  const { policy } = tinyPolicy(2);
  const ref = new Qwen2_5_VL(policy.model.config);
  const t = new GrpoTrainer({ config: cfg(b, { lora: null, steps: 4 }), policy, reference: ref, scorer: null, data });
  assert.throws(() => t.resumableCheckpoint(), (e: Error) => e.message.startsWith(`${path.join(b, 'checkpoints', 'step-000003')}: the checkpoint was made with lora {"r":4,`) && e.message.endsWith(", this run has null (field 'lora'); use --fresh or the same config"));
  policy.model.dispose(); ref.dispose(); t.optimizer.dispose();
});

test('LoRA trainer wiring errors name the problem', () => {
  const { policy, reference } = tinyPolicy(3);
  const data = worldDataset(2);
  const out = tmp('dpad-lora-err-');
  assert.throws(() => new GrpoTrainer({ config: cfg(out), policy, reference, scorer: null, data }),
    (e: Error) => e.message === "trainer: with 'lora' the reference is the policy with its adapters off; pass reference null (a reference copy would cost a second model)");
  // adapters already on the policy must be the config's
  applyLora(policy.model, { r: 2, alpha: 8 });
  assert.throws(() => new GrpoTrainer({ config: cfg(out), policy, reference: null, scorer: null, data }),
    (e: Error) => e.message === "trainer: model.layers.0.self_attn.q_proj: the policy's adapter has r=2, alpha=8, dropout=0, rslora=false; config 'lora' says r=4, alpha=8, dropout=0, rslora=false");
  assert.throws(() => new GrpoTrainer({ config: cfg(out, { lora: { r: 2, alpha: 8, targetModules: ['q_proj'] } }), policy, reference: null, scorer: null, data }),
    (e: Error) => e.message === "trainer: the policy's LoRA adapters (14 modules) are not the ones config 'lora' selects (2 modules)");
  assert.ok(new GrpoTrainer({ config: cfg(out, { lora: { r: 2, alpha: 8 } }), policy, reference: null, scorer: null, data }), 'matching adapters are used');
  assert.throws(() => new GrpoTrainer({ config: cfg(out, { lora: null }), policy, reference, scorer: null, data }),
    (e: Error) => e.message === "trainer: the policy has LoRA adapters but the config has no 'lora' section (full fine-tuning would train the adapters only)");
  assert.throws(() => policyGradients(reference, 'adapters-off', 1, () => { throw new Error('unreached'); }, { ...cfg(out), microBatch: 1 }),
    (e: Error) => e.message === "update: reference 'adapters-off' needs a policy with LoRA adapters (applyLora)");
  policy.model.dispose(); reference.dispose();
});

test.run();
