/**
 * Trained weights a user can take away (src/rl/export.ts, tools/export.ts): a run's latest
 * checkpoint, LoRA or full, exported to a weights directory that loadWeights accepts and that
 * segments a world image exactly as the in-memory trained policy does (greedy).
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { worldSample } from '../src/data/world/generator.ts';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { applyLora } from '../src/models/qwen2_5_vl/lora.ts';
import { loadSam2 } from '../src/models/sam2/weights.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { loadPolicyFrom, loadWeights } from '../src/pipeline/bundle.ts';
import { Segmenter, type SegmentResult } from '../src/pipeline/segment.ts';
import { saveCheckpoint } from '../src/rl/checkpoint.ts';
import { trainConfig } from '../src/rl/config.ts';
import { exportRun } from '../src/rl/export.ts';
import { randomizeAdapters } from './helpers/lora.ts';

const DEMO = path.resolve('weights/demo');
const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));

/** a run folder with one checkpoint of `model` (as the trainer writes it) and run.json naming the base */
function fakeRun(model: Parameters<typeof saveCheckpoint>[2], kind: 'full' | 'adapter', lora: object | null): string {
  const run = tmp('dpad-export-run-');
  const opt = new AdamW({ lr: 1e-3, weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8 });
  saveCheckpoint(path.join(run, 'checkpoints'), 7, model, opt, { step: 7, cursor: 0, epoch: 0, rng: {}, config: trainConfig({ lora: lora as never }) }, kind);
  opt.dispose();
  fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ weights: DEMO }));
  return run;
}

const strip = (r: SegmentResult) => {
  const { mask, viewImage: _v, ...rest } = r;
  return { ...rest, mask: mask ? Array.from(mask) : null };
};

test('a LoRA run exports to a weights directory that loadWeights takes and that segments as the in-memory policy does', async () => {
  const policy = loadPolicyFrom(DEMO);
  const sam = loadSam2(path.join(DEMO, 'sam2'));
  const image = worldSample('test', 0).image;
  const query = worldSample('test', 0).query;
  const base = await new Segmenter(policy, sam).segment(image, query, { maxNewTokens: 96 });
  applyLora(policy.model, { r: 4, alpha: 8 });
  randomizeAdapters(policy.model, 3, 0.05);
  const run = fakeRun(policy.model, 'adapter', { r: 4, alpha: 8 });
  const out = path.join(tmp('dpad-export-out-'), 'w');
  const r = exportRun({ run, out });
  assert.is(r.kind, 'adapter');
  assert.is(r.step, 7);
  assert.equal(fs.readdirSync(out).sort(), ['adapter', 'clip', 'export.json', 'policy', 'sam2']);
  assert.equal(fs.readdirSync(path.join(out, 'adapter')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const ac = JSON.parse(fs.readFileSync(path.join(out, 'adapter', 'adapter_config.json'), 'utf8'));
  assert.is(ac.base_model_name_or_path, path.join(DEMO, 'policy'));
  assert.is(ac.peft_type, 'LORA');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'dpad.json']) assert.ok(fs.existsSync(path.join(out, 'policy', f)), `policy/${f}`);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'export.json'), 'utf8')).lora, trainConfig({ lora: { r: 4, alpha: 8 } }).lora);
  const mine = await new Segmenter(policy, sam).segment(image, query, { maxNewTokens: 96 });
  const w = loadWeights(out);
  try {
    assert.ok(w.scorer, 'clip/ came along');
    const theirs = await w.segmenter.segment(image, query, { maxNewTokens: 96 });
    assert.equal(strip(theirs), strip(mine), 'the exported weights segment as the trained policy does');
    assert.ok(mine.generatedTokens > 0);
    assert.ok(mine.text !== base.text, 'the adapters change what the policy says (the comparison means something)');
  } finally {
    w.dispose();
  }
  // a second export over it is refused unless asked
  assert.throws(() => exportRun({ run, out }), (e: Error) => e.message === `${out}: already exists (pass --overwrite to replace it)`);
  policy.model.dispose(); sam.dispose();
});

test('a full fine-tuning checkpoint exports in the transformers layout with the trained values exactly', () => {
  const policy = loadPolicyFrom(DEMO);
  const q = policy.model.namedParameters().get('model.layers.0.self_attn.q_proj.weight')!;
  tf.tidy(() => q.assign(tf.add(q, tf.randomNormal(q.shape, 0, 0.01, 'float32', 5))));
  const run = fakeRun(policy.model, 'full', null);
  const out = path.join(tmp('dpad-export-full-'), 'w');
  const r = exportRun({ run: path.join(run, 'checkpoints', 'step-000007'), out, weights: DEMO, layout: 'transformers' });
  assert.is(r.kind, 'full');
  assert.not.ok(fs.existsSync(path.join(out, 'adapter')), 'no adapter for a full run');
  const f = SafetensorsFile.open(path.join(out, 'policy', 'model.safetensors'));
  assert.ok(f.keys().includes('model.language_model.layers.0.self_attn.q_proj.weight'), 'transformers key names');
  f.close();
  const back = loadPolicyFrom(out);
  const a = back.model.namedParameters(), b = policy.model.namedParameters();
  assert.equal([...a.keys()], [...b.keys()]);
  for (const [k, v] of b) assert.equal(Array.from(a.get(k)!.dataSync()), Array.from(v.dataSync()), k);
  back.model.dispose(); policy.model.dispose();
});

test('export errors name the run and the base', () => {
  const empty = tmp('dpad-export-empty-');
  assert.throws(() => exportRun({ run: empty, out: path.join(empty, 'w') }), (e: Error) => e.message === `${empty}: no checkpoint (expected checkpoints/latest of a training run, or a checkpoint folder with state.json)`);
  assert.throws(() => exportRun({ run: path.join(empty, 'nope'), out: path.join(empty, 'w') }), (e: Error) => e.message === `${path.join(empty, 'nope')}: no such run folder`);
  const policy = loadPolicyFrom(DEMO);
  const run = fakeRun(policy.model, 'full', null);
  policy.model.dispose();
  assert.throws(() => exportRun({ run, out: path.join(empty, 'w'), weights: empty }), (e: Error) => e.message === `${empty}: no policy/ folder (the base weights directory must hold policy/, sam2/ and optionally clip/; pass --weights)`);
});

test.run();
