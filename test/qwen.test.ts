import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { qwenConfigFrom } from '../src/models/qwen2_5_vl/config.ts';
import { convertQwen, qwenParamShapes } from '../src/models/qwen2_5_vl/convert.ts';
import { generate, sequenceLogProbs } from '../src/models/qwen2_5_vl/generate.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { chatPrompt, preprocessImage, smartResize } from '../src/models/qwen2_5_vl/processor.ts';
import { PolicyTokenizer } from '../src/models/qwen2_5_vl/tokenizer.ts';
import { loadQwen } from '../src/models/qwen2_5_vl/weights.ts';
import { FIXTURES } from './helpers/setup.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-qwen-'));
const A = path.join(FIXTURES, 'qwen2_5_vl-tiny-a');
const B = path.join(FIXTURES, 'qwen2_5_vl-tiny-b');

function mmInputs(dir: string) {
  const t = SafetensorsFile.open(path.join(dir, 'tensors.safetensors'));
  const ids = t.read('mm/input_ids');
  const mask = t.read('mm/attention_mask');
  const pv = t.read('mm/pixel_values');
  const g = t.read('mm/image_grid_thw');
  t.close();
  const grids: [number, number, number][] = [];
  for (let i = 0; i < g.shape[0]; i++) grids.push([g.data[i * 3], g.data[i * 3 + 1], g.data[i * 3 + 2]]);
  return { ids: Int32Array.from(ids.data), batch: ids.shape[0], length: ids.shape[1], attentionMask: Int32Array.from(mask.data), pv, grids };
}

test('the shape table of the config matches the model and both fixture checkpoints', () => {
  for (const dir of [A, B]) {
    const cfg = qwenConfigFrom(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
    const table = qwenParamShapes(cfg);
    const m = new Qwen2_5_VL(cfg);
    const ex = m.exportTensors();
    assert.is(ex.size, table.size);
    for (const [k, t] of ex) {
      const want = table.get(k)!;
      // the patch embedding is held as a matrix; the checkpoint's 5-D kernel flattens to it
      const flat = k === 'visual.patch_embed.proj.weight' ? [want[0], want.slice(1).reduce((a, b) => a * b, 1)] : want;
      assert.equal(t.shape, flat, k);
      t.dispose();
    }
    m.dispose();
  }
});

test('converter streams a sharded new-layout checkpoint into the hub layout with the same logits', () => {
  // build a 2-shard checkpoint in the transformers >= 4.52 layout from fixture A
  const src = path.join(tmp, 'src-new');
  fs.mkdirSync(src, { recursive: true });
  const f = SafetensorsFile.open(path.join(A, 'model.safetensors'));
  const keys = f.keys();
  const rename = (k: string) => (k.startsWith('visual.') ? 'model.' + k : k.startsWith('model.') ? 'model.language_model.' + k.slice(6) : k);
  const halves = [keys.slice(0, keys.length >> 1), keys.slice(keys.length >> 1)];
  const wm: Record<string, string> = {};
  halves.forEach((ks, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(src, name), new Map(ks.map(k => [rename(k), { ...f.meta(k), bytes: () => f.bytes(k) }])));
    for (const k of ks) wm[rename(k)] = name;
  });
  f.close();
  fs.writeFileSync(path.join(src, 'model.safetensors.index.json'), JSON.stringify({ weight_map: wm }));
  fs.copyFileSync(path.join(A, 'config.json'), path.join(src, 'config.json'));
  const out = path.join(tmp, 'converted');
  const shards: string[] = [];
  const r = convertQwen({ from: src, out, onShard: n => shards.push(n) });
  assert.is(r.shards.length, 2);
  assert.equal(shards, r.shards);
  const m = loadQwen(out);
  const t = SafetensorsFile.open(path.join(A, 'tensors.safetensors'));
  const ids = t.read('text/input_ids');
  const want = t.read('text/logits');
  t.close();
  const lg = m.forward({ ids: Int32Array.from(ids.data), batch: ids.shape[0], length: ids.shape[1] }).logits;
  const got = lg.dataSync();
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want.data[i]));
  assert.ok(err < 1e-4, `max abs ${err}`);
  lg.dispose();
  m.dispose();
});

test('converter reports every key that does not fit the config', () => {
  const src = path.join(tmp, 'bad');
  fs.mkdirSync(src, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(A, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(src, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 100 }));
  fs.copyFileSync(path.join(A, 'model.safetensors'), path.join(src, 'model.safetensors'));
  assert.throws(() => convertQwen({ from: src, out: path.join(tmp, 'bad-out') }), /does not fit its config\.json: 6 problems: .*model\.layers\.0\.mlp\.gate_proj\.weight: expected \[100,48\], got \[96,48\]/);
});

test('generation with the KV cache equals generation without it, greedy and sampled', () => {
  const m = loadQwen(A);
  const x = mmInputs(A);
  const pv = () => tf.tensor2d(x.pv.data as Float32Array, x.pv.shape as [number, number]);
  for (const greedy of [true, false]) {
    const p1 = pv();
    const p2 = pv();
    const base = { ids: x.ids, batch: x.batch, length: x.length, attentionMask: x.attentionMask, grids: x.grids, maxNewTokens: 8, greedy, temperature: 1.3, topP: 0.9, seed: 5 };
    const a = generate(m, { ...base, pixelValues: p1, useCache: true });
    const b = generate(m, { ...base, pixelValues: p2, useCache: false });
    assert.equal(a.tokens, b.tokens, `greedy=${greedy}`);
    for (let r = 0; r < a.logprobs.length; r++) for (let k = 0; k < a.logprobs[r].length; k++) assert.ok(Math.abs(a.logprobs[r][k] - b.logprobs[r][k]) < 1e-4);
    p1.dispose(); p2.dispose();
  }
  m.dispose();
});

test('numTensors stays flat over 50 decoding steps', () => {
  const start = tf.memory().numTensors;
  const m = loadQwen(B);
  const ids = Int32Array.from({ length: 10 }, (_, i) => 10 + i);
  const counts: number[] = [];
  const before = tf.memory().numTensors;
  assert.is(before, start + m.namedParameters().size + 1, 'the parameters and one held copy of the tied head');
  generate(m, { ids, batch: 1, length: 10, maxNewTokens: 50, greedy: true, onStep: () => counts.push(tf.memory().numTensors) });
  assert.is(counts.length, 50);
  assert.is(counts[49], counts[1], `tensors during decoding: ${counts[1]} -> ${counts[49]}`);
  assert.is(tf.memory().numTensors, before);
  m.dispose();
  assert.is(tf.memory().numTensors, start, 'dispose releases the held copy with the parameters');
});

test('teacher-forced log-probs equal the sampled ones and train only the unfrozen parts', () => {
  const m = loadQwen(B);
  const P = 6;
  const prompt = Int32Array.from([3, 4, 5, 6, 7, 8]);
  const g = generate(m, { ids: prompt, batch: 1, length: P, maxNewTokens: 5, temperature: 0.7, seed: 'x' });
  const resp = g.tokens[0];
  const ids = Int32Array.from([...prompt, ...resp]);
  const mask = new Int32Array(ids.length).fill(1);
  const lp = sequenceLogProbs(m, { ids, batch: 1, promptLength: P, responseLength: resp.length, attentionMask: mask }, { temperature: 0.7, entropy: true });
  const got = lp.logProbs.dataSync();
  resp.forEach((_, k) => assert.ok(Math.abs(got[k] - g.logprobs[0][k]) < 1e-4, `token ${k}: ${got[k]} vs ${g.logprobs[0][k]}`));
  assert.ok(lp.entropy!.dataSync().every(e => e >= 0));
  lp.logProbs.dispose(); lp.entropy!.dispose();
  m.setTrainable(false, n => n.startsWith('visual.'));
  const vars = [...m.trainableParameters().values()];
  const { grads } = tf.variableGrads(() => tf.sum(sequenceLogProbs(m, { ids, batch: 1, promptLength: P, responseLength: resp.length, attentionMask: mask }).logProbs) as tf.Scalar, vars);
  const names = new Map([...m.namedParameters()].map(([n, v]) => [v.name, n]));
  const gradNames = Object.keys(grads).map(k => names.get(k)!);
  assert.ok(gradNames.includes('model.layers.0.self_attn.q_proj.weight'));
  assert.not.ok(gradNames.some(n => n.startsWith('visual.')));
  assert.ok(Object.values(grads).some(t => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]) > 0));
  tf.dispose(Object.values(grads));
  m.dispose();
});

test('bad input: image too small or too elongated, prompt over the context, missing tokenizer.json', () => {
  assert.throws(() => smartResize(20, 300), /image 300x20 is smaller than the 28-pixel factor/);
  assert.throws(() => smartResize(28, 28 * 201), /aspect ratio/);
  assert.equal(smartResize(840, 840), [840, 840]);
  assert.equal(smartResize(100, 200, 28, 3136, 12845056), [112, 196]);
  const img = { width: 40, height: 30, channels: 3, data: new Uint8Array(3600) };
  const p = preprocessImage(img, { patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 });
  assert.equal(p.grid, [1, 4, 6]); // 30x40 is below min_pixels: scaled up to 56x84
  assert.is(p.tokens, 6);
  p.pixelValues.dispose();
  const m = loadQwen(B);
  const long = new Int32Array(5000).fill(7);
  assert.throws(() => m.forward({ ids: long, batch: 1, length: 5000 }), /5000 positions exceed max_position_embeddings 4096/);
  m.dispose();
  assert.throws(() => PolicyTokenizer.load(tmp), new RegExp(`^${tmp}: no tokenizer\\.json and no vocab\\.json \\+ merges\\.txt`));
  assert.match(chatPrompt('hi', 2), /^<\|im_start\|>system\nYou are a helpful assistant\.<\|im_end\|>\n<\|im_start\|>user\n<\|vision_start\|><\|image_pad\|><\|image_pad\|><\|vision_end\|>hi<\|im_end\|>\n<\|im_start\|>assistant\n$/);
});

test.run();
