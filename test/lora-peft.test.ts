import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { toTensor } from '../src/io/source.ts';
import { applyLora, loraAdapters, loraParameters } from '../src/models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, exportMergedQwen, loadPeftAdapter, savePeftAdapter, targetModulesRegex } from '../src/models/qwen2_5_vl/peft.ts';
import { loadQwen } from '../src/models/qwen2_5_vl/weights.ts';
import { logits, maxAbsDiff, randomizeAdapters, tinyInputs, tinyQwen, tmpDir } from './helpers/lora.ts';

function trained(seed = 4, vision = false) {
  const m = tinyQwen(seed);
  applyLora(m, { r: 4, alpha: 8, dropout: 0.05, vision });
  randomizeAdapters(m, seed + 1);
  return m;
}

test('save writes PEFT keys (transformers 4.57 module names), shapes [r, in] / [out, r] and a LoraConfig; load gives identical outputs', () => {
  const m = trained(4, true);
  const dir = tmpDir('save');
  const n0 = tf.memory().numTensors;
  const keys = savePeftAdapter(m, dir, { baseModel: 'Qwen/Qwen2.5-VL-3B-Instruct' });
  assert.is(tf.memory().numTensors, n0, 'save leaks nothing');
  assert.ok(keys.includes('base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight'));
  assert.ok(keys.includes('base_model.model.model.visual.blocks.2.attn.qkv.lora_B.weight'));
  const f = SafetensorsFile.open(path.join(dir, ADAPTER_WEIGHTS));
  assert.equal(f.meta('base_model.model.model.language_model.layers.1.mlp.down_proj.lora_A.weight'), { dtype: 'F32', shape: [4, 96] });
  assert.equal(f.meta('base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight'), { dtype: 'F32', shape: [48, 4] });
  assert.is(f.keys().length, 2 * (2 * 7 + 4 * 5));
  f.close();
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG), 'utf8'));
  assert.equal([cfg.peft_type, cfg.task_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.bias, cfg.use_rslora, cfg.fan_in_fan_out, cfg.base_model_name_or_path],
    ['LORA', 'CAUSAL_LM', 4, 8, 0.05, 'none', false, false, 'Qwen/Qwen2.5-VL-3B-Instruct']);
  // target_modules is a regex PEFT fullmatches: exactly the adapted modules, in both namings
  const re = new RegExp(`^(?:${cfg.target_modules})$`);
  for (const n of ['model.language_model.layers.1.self_attn.o_proj', 'model.layers.0.mlp.gate_proj', 'model.visual.blocks.3.mlp.up_proj', 'visual.blocks.0.attn.proj']) assert.ok(re.test(n), n);
  for (const n of ['lm_head', 'model.visual.merger.mlp.0', 'model.language_model.layers.0.self_attn', 'model.language_model.layers.0.mlp.gate_proj.x']) assert.not.ok(re.test(n), n);
  const inp = tinyInputs(m);
  const want = logits(m, inp);
  const fresh = tinyQwen(4);
  const got = loadPeftAdapter(fresh, dir);
  assert.equal(got, { r: 4, alpha: 8, dropout: 0.05, rslora: false, seed: undefined });
  assert.equal(Array.from(logits(fresh, inp)), Array.from(want));
  assert.equal([...fresh.trainableParameters().keys()], [...m.trainableParameters().keys()]);
  // loading into a model that already has the same adapters replaces their values (resume)
  randomizeAdapters(fresh, 99);
  const n1 = tf.memory().numTensors;
  loadPeftAdapter(fresh, dir);
  assert.is(tf.memory().numTensors, n1, 'load leaks nothing');
  assert.equal(Array.from(logits(fresh, inp)), Array.from(want));
  inp.dispose();
  m.dispose();
  fresh.dispose();
});

test('an adapter saved with the legacy module names (model.layers.*) loads the same', () => {
  const m = trained(6);
  const dir = tmpDir('legacy');
  const keys = savePeftAdapter(m, dir, { layout: 'hub' });
  assert.ok(keys.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
  const inp = tinyInputs(m);
  const fresh = tinyQwen(6);
  loadPeftAdapter(fresh, dir);
  assert.equal(Array.from(logits(fresh, inp)), Array.from(logits(m, inp)));
  inp.dispose();
  m.dispose();
  fresh.dispose();
});

test('targetModulesRegex collapses whole stacks to \\d+ and lists a partial one', () => {
  const m = tinyQwen();
  assert.is(targetModulesRegex(m, ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']), '(?:model\\.language_model|model)\\.layers\\.\\d+\\.(?:self_attn\\.q_proj)');
  assert.is(targetModulesRegex(m, ['model.layers.1.mlp.up_proj', 'visual.blocks.2.attn.qkv']),
    '(?:(?:model\\.language_model|model)\\.layers\\.(?:1)\\.(?:mlp\\.up_proj)|(?:model\\.)?visual\\.blocks\\.(?:2)\\.(?:attn\\.qkv))');
  m.dispose();
});

/** Rewrite a saved adapter: a key renamed, a tensor replaced or removed, or the config edited. */
function tamper(dir: string, edit: { tensors?: (t: Map<string, tf.Tensor>) => void; config?: (c: Record<string, unknown>) => void }) {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (edit.tensors) {
    const f = SafetensorsFile.open(file);
    const t = new Map(f.keys().map(k => [k, toTensor(f.read(k))]));
    f.close();
    edit.tensors(t);
    writeSafetensors(file, t);
    tf.dispose([...t.values()]);
  }
  if (edit.config) {
    const c = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG), 'utf8'));
    edit.config(c);
    fs.writeFileSync(path.join(dir, ADAPTER_CONFIG), JSON.stringify(c));
  }
}

test('a bad adapter is refused before anything is assigned, naming the key or field', () => {
  const m = trained(8);
  const base = tmpDir('bad');
  const fresh = () => tinyQwen(8);
  const cases: [string, Parameters<typeof tamper>[1], string][] = [
    ['shape', { tensors: t => { const k = 'base_model.model.model.language_model.layers.0.self_attn.k_proj.lora_B.weight'; t.get(k)!.dispose(); t.set(k, tf.zeros([48, 4])); } },
      'the adapter does not fit the model: 1 problem(s): base_model.model.model.language_model.layers.0.self_attn.k_proj.lora_B.weight: expected [24,4] (r=4), got [48,4]'],
    ['missing', { tensors: t => { const k = 'base_model.model.model.language_model.layers.1.mlp.up_proj.lora_B.weight'; t.get(k)!.dispose(); t.delete(k); } },
      'the adapter does not fit the model: 1 problem(s): model.layers.1.mlp.up_proj: lora_B.weight is missing'],
    ['module', { tensors: t => t.set('base_model.model.model.language_model.layers.5.self_attn.q_proj.lora_A.weight', tf.zeros([4, 48])) },
      'the adapter does not fit the model: 1 problem(s): base_model.model.model.language_model.layers.5.self_attn.q_proj.lora_A.weight: no module model.language_model.layers.5.self_attn.q_proj in the model that takes an adapter'],
    ['prefix', { tensors: t => t.set('model.layers.0.self_attn.q_proj.lora_A.weight', tf.zeros([4, 48])) },
      'the adapter does not fit the model: 1 problem(s): model.layers.0.self_attn.q_proj.lora_A.weight: not a PEFT LoRA key (base_model.model.<module>.lora_A.weight / lora_B.weight)'],
    ['target', { config: c => { c.target_modules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj']; } },
      'the adapter does not fit the model: 4 problem(s): base_model.model.model.language_model.layers.0.mlp.down_proj.lora_A.weight: adapter_config.json target_modules does not select this module'],
  ];
  for (const [name, edit, msg] of cases) {
    const dir = path.join(base, name);
    savePeftAdapter(m, dir);
    tamper(dir, edit);
    const f = fresh();
    assert.throws(() => loadPeftAdapter(f, dir), (e: Error) => e.message.startsWith(`${path.join(dir, ADAPTER_WEIGHTS)}: ${msg}`), name);
    assert.is(loraAdapters(f).size, 0, `${name}: nothing applied`);
    f.dispose();
  }
  const fields: [string, unknown, string][] = [
    ['peft_type', 'IA3', 'peft_type must be "LORA", got "IA3"'],
    ['use_dora', true, 'use_dora must be false (not supported), got true'],
    ['bias', 'all', 'bias must be "none" (bias training is not supported), got "all"'],
    ['rank_pattern', { q_proj: 8 }, 'rank_pattern must be empty (per-module ranks are not supported), got {"q_proj":8}'],
    ['r', 0, 'r must be a whole number >= 1, got 0'],
  ];
  for (const [field, value, msg] of fields) {
    const dir = path.join(base, `f-${field}`);
    savePeftAdapter(m, dir);
    tamper(dir, { config: c => { c[field] = value; } });
    const f = fresh();
    assert.throws(() => loadPeftAdapter(f, dir), (e: Error) => e.message === `${path.join(dir, ADAPTER_CONFIG)}: ${msg}`, field);
    f.dispose();
  }
  // a model whose adapters differ from the file's
  const dir = path.join(base, 'ok');
  savePeftAdapter(m, dir);
  const other = tinyQwen(8);
  applyLora(other, { r: 2, alpha: 8 });
  assert.throws(() => loadPeftAdapter(other, dir), (e: Error) => e.message.includes("model.layers.0.self_attn.q_proj: the model's adapter has r=2, alpha=8, rslora=false; the file r=4, alpha=8, rslora=false"));
  other.dispose();
  m.dispose();
});

test('merge-and-export writes an HF checkpoint (hub keys, Conv3d patch kernel, shards + index) that loadQwen reads with the adapted logits', () => {
  const m = trained(10, true);
  const inp = tinyInputs(m);
  const want = logits(m, inp);
  const root = tmpDir('export');
  const baseDir = path.join(root, 'base');
  fs.mkdirSync(baseDir);
  fs.writeFileSync(path.join(baseDir, 'config.json'), fs.readFileSync(new URL('../../shared/fixtures/qwen2_5_vl-tiny-a/config.json', import.meta.url)));
  fs.writeFileSync(path.join(baseDir, 'tokenizer_config.json'), '{"model_max_length": 32768}');
  const out = path.join(root, 'merged');
  const n0 = tf.memory().numTensors;
  const shards = exportMergedQwen(m, out, { baseDir, maxShardBytes: 200_000 });
  assert.is(tf.memory().numTensors, n0, 'export leaks nothing');
  assert.ok(shards.length > 1);
  assert.is(shards[0], `model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const idx = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
  assert.is(idx.weight_map['model.layers.0.self_attn.q_proj.weight'] !== undefined, true);
  assert.is(Object.keys(idx.weight_map).some(k => k.includes('lora_')), false);
  const pe = idx.weight_map['visual.patch_embed.proj.weight'];
  const sf = SafetensorsFile.open(path.join(out, pe));
  assert.equal(sf.meta('visual.patch_embed.proj.weight').shape, [32, 3, 2, 14, 14]);
  sf.close();
  assert.ok(fs.existsSync(path.join(out, 'tokenizer_config.json')));
  assert.is(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype, 'float32');
  const loaded = loadQwen(out);
  assert.ok(maxAbsDiff(logits(loaded, inp), want) < 1e-4, 'merged export == base + adapter');
  assert.equal(Array.from(logits(m, inp)), Array.from(want), 'the live model is unchanged by the export');
  assert.throws(() => exportMergedQwen(m, out), (e: Error) => e.message === `${out}: already exists (pass overwrite to replace it)`);
  const wrong = path.join(root, 'wrong');
  fs.mkdirSync(wrong);
  const wc = JSON.parse(fs.readFileSync(path.join(baseDir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(wrong, 'config.json'), JSON.stringify({ ...wc, num_hidden_layers: 3 }));
  assert.throws(() => exportMergedQwen(m, path.join(root, 'x'), { baseDir: wrong }),
    (e: Error) => e.message === `${path.join(wrong, 'config.json')}: num_hidden_layers is 3 but the model has 2 (not this model's base directory)`);
  // the transformers module names, one file, BF16, config.json written from the model's config
  const out2 = path.join(root, 'merged-tf');
  assert.equal(exportMergedQwen(m, out2, { layout: 'transformers', dtype: 'BF16' }), ['model.safetensors']);
  const one = SafetensorsFile.open(path.join(out2, 'model.safetensors'));
  assert.equal(one.meta('model.language_model.layers.1.mlp.up_proj.weight').dtype, 'BF16');
  assert.ok(one.has('model.visual.blocks.0.attn.qkv.weight') && one.has('lm_head.weight'));
  one.close();
  const loaded2 = loadQwen(out2);
  assert.ok(maxAbsDiff(logits(loaded2, inp), want) < 0.05, 'BF16 export close to F32');
  inp.dispose();
  m.dispose();
  loaded.dispose();
  loaded2.dispose();
});

test('exact resume: adapter (PEFT files) + AdamW state restored into a fresh model give the same next step, bit for bit', () => {
  const loss = (m: Qwen2_5_VL, inp: ReturnType<typeof tinyInputs>) => tf.tidy(() => tf.mean(tf.square(m.forward(inp).logits)) as tf.Scalar);
  const step = (m: Qwen2_5_VL, opt: AdamW, inp: ReturnType<typeof tinyInputs>) => {
    const vars = [...m.trainableParameters()];
    const { value, grads } = tf.variableGrads(() => loss(m, inp), vars.map(([, v]) => v));
    opt.apply(m.trainableParameters(), new Map(vars.map(([n, v]) => [n, grads[v.name]])));
    tf.dispose([value, ...Object.values(grads)]);
  };
  const m = tinyQwen(14);
  applyLora(m, { r: 2, alpha: 4, seed: 3 });
  const inp = tinyInputs(m, false);
  const opt = new AdamW({ lr: 1e-2 });
  step(m, opt, inp);
  const dir = tmpDir('resume');
  savePeftAdapter(m, dir);
  const st = opt.state();
  // the resumed run: a fresh base, the adapter files, the optimizer state
  const r = tinyQwen(14);
  loadPeftAdapter(r, dir);
  const opt2 = new AdamW({ lr: 1e-2 });
  opt2.loadState(st);
  tf.dispose([...st.m.values(), ...st.v.values()]);
  step(m, opt, inp);
  step(r, opt2, inp);
  for (const [n, v] of loraParameters(m)) assert.equal(Array.from(loraParameters(r).get(n)!.dataSync()), Array.from(v.dataSync()), n);
  opt.dispose();
  opt2.dispose();
  inp.dispose();
  m.dispose();
  r.dispose();
});

test('a tied-embedding model exports without lm_head and reloads', () => {
  const m = tinyQwen(12, { tie_word_embeddings: true });
  applyLora(m, { r: 2, alpha: 4, rslora: true });
  randomizeAdapters(m, 13);
  const inp = tinyInputs(m, false);
  const out = path.join(tmpDir('tied'), 'm');
  exportMergedQwen(m, out);
  const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
  assert.not.ok(f.has('lm_head.weight'));
  f.close();
  const loaded = loadQwen(out);
  assert.is(loaded.config.tie_word_embeddings, true);
  assert.ok(maxAbsDiff(logits(loaded, inp), logits(m, inp)) < 1e-4);
  inp.dispose();
  m.dispose();
  loaded.dispose();
});

test.run();
