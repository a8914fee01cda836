import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyLora, loraAdapters, loraParameters, loraTargets, mergeLora, setAdaptersEnabled, unmergeLora, withAdaptersDisabled } from '../src/models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { logits, maxAbsDiff, randomizeAdapters, tinyInputs, tinyQwen } from './helpers/lora.ts';

const MODS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

test('applyLora: default targets are the decoder projections; the base is frozen, only lora_A/lora_B train', () => {
  const m = tinyQwen();
  const ad = applyLora(m, { r: 4, alpha: 8 });
  const want = [0, 1].flatMap(l => MODS.map(n => `model.layers.${l}.${['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(n) ? 'self_attn' : 'mlp'}.${n}`));
  assert.equal([...ad.keys()], want);
  const trainable = [...m.trainableParameters().keys()];
  assert.equal(trainable, want.flatMap(n => [`${n}.lora_A.weight`, `${n}.lora_B.weight`]));
  assert.equal([...loraParameters(m).keys()], trainable);
  assert.ok(m.namedParameters().get('model.embed_tokens.weight')!.trainable === false);
  assert.throws(() => applyLora(m, { r: 4, alpha: 8 }), (e: Error) => e.message === 'applyLora: the model already has LoRA adapters');
  m.dispose();
});

test('vision targets are opt-in and scoped; a target that selects nothing is named', () => {
  const m = tinyQwen();
  const names = loraTargets(m, { r: 2, alpha: 2, targetModules: ['q_proj', 'self_attn.v_proj'], vision: true });
  assert.equal(names.filter(n => n.startsWith('model.')), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
  assert.is(names.filter(n => n.startsWith('visual.')).length, 4 * 5);
  assert.ok(names.includes('visual.blocks.3.attn.qkv') && names.includes('visual.blocks.0.mlp.gate_proj'));
  // the decoder's gate_proj does not pick the vision MLP's
  assert.ok(loraTargets(m, { r: 2, alpha: 2, targetModules: ['gate_proj'] }).every(n => n.startsWith('model.layers.')));
  assert.throws(() => loraTargets(m, { r: 2, alpha: 2, targetModules: ['qkv'] }),
    (e: Error) => e.message === "lora config: targetModules entry 'qkv' matches no decoder module (decoder modules end in self_attn.q_proj, self_attn.k_proj, self_attn.v_proj, self_attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)");
  assert.throws(() => loraTargets(m, { r: 2, alpha: 2, targetModules: [] }), (e: Error) => e.message === 'lora config: no target modules (targetModules and visionTargetModules select nothing)');
  m.dispose();
});

test('adapters off give exactly the base model; on, the adapted one; merged, the same logits as base + adapter', () => {
  const base = tinyQwen(3);
  const inp = tinyInputs(base);
  const baseLogits = logits(base, inp);
  const m = tinyQwen(3);
  applyLora(m, { r: 4, alpha: 16, vision: true });
  assert.equal(Array.from(logits(m, inp)), Array.from(baseLogits), 'fresh adapters (B = 0) are the identity');
  randomizeAdapters(m);
  const adapted = logits(m, inp);
  assert.ok(maxAbsDiff(adapted, baseLogits) > 1e-2, 'trained adapters change the logits');
  const off = withAdaptersDisabled(m, () => logits(m, inp));
  assert.equal(Array.from(off), Array.from(baseLogits), 'adapters off == base, bit for bit');
  assert.equal(Array.from(logits(m, inp)), Array.from(adapted), 'back on');
  const n = tf.memory().numTensors;
  mergeLora(m);
  assert.is(tf.memory().numTensors, n);
  assert.ok(maxAbsDiff(logits(m, inp), adapted) < 1e-4, 'merged == base + adapter');
  assert.throws(() => setAdaptersEnabled(m, false), (e: Error) => /model\.layers\.0\.self_attn\.q_proj: the adapter is merged/.test(e.message));
  unmergeLora(m);
  assert.ok(maxAbsDiff(withAdaptersDisabled(m, () => logits(m, inp)), baseLogits) < 1e-4);
  inp.dispose();
  base.dispose();
  m.dispose();
});

/** An advantage-weighted sequence log-likelihood (the GRPO surrogate at ratio 1) of the next tokens. */
function pgLoss(m: Qwen2_5_VL, inp: ReturnType<typeof tinyInputs>): tf.Scalar {
  return tf.tidy(() => {
    const { batch: B, length: L } = inp;
    const V = m.config.vocab_size;
    const lg = m.forward(inp).logits.slice([0, 0, 0], [B, L - 1, V]);
    const next = tf.tensor2d(Array.from({ length: B }, (_, b) => Array.from(inp.ids.slice(b * L + 1, (b + 1) * L))), [B, L - 1], 'int32');
    const lp = tf.sum(tf.mul(tf.logSoftmax(lg), tf.oneHot(next, V)), -1); // [B, L-1]
    return tf.neg(tf.sum(tf.mul(lp, tf.tensor2d([[1.5], [-0.5]])))) as tf.Scalar;
  });
}

test('a LoRA step: gradients exist for the adapters only and equal the full-weight gradient restricted to the low-rank update', () => {
  const m = tinyQwen(5);
  applyLora(m, { r: 3, alpha: 6, vision: true });
  randomizeAdapters(m, 11);
  const inp = tinyInputs(m);
  const vars = [...m.trainableParameters()];
  const { value, grads } = tf.variableGrads(() => pgLoss(m, inp), vars.map(([, v]) => v));
  assert.is(Object.keys(grads).length, vars.length);
  // the reference: a plain model holding the merged weights W' = W + s B A, full fine-tuning gradient G = dL/dW'
  const full = tinyQwen(5);
  const adapters = loraAdapters(m);
  for (const [name, a] of adapters) {
    const w = full.namedParameters().get(`${name}.weight`)!;
    tf.tidy(() => w.assign(tf.add(w, a.deltaWeightHeld())));
  }
  const fullVars = [...adapters.keys()].map(n => full.namedParameters().get(`${n}.weight`)!);
  const ref = tf.variableGrads(() => pgLoss(full, inp), fullVars);
  assert.ok(Math.abs(ref.value.dataSync()[0] - value.dataSync()[0]) < 1e-4);
  let checked = 0;
  [...adapters].forEach(([, a], i) => tf.tidy(() => {
    const G = tf.transpose(ref.grads[fullVars[i].name]); // [out, in]
    const A = tf.transpose(a.loraA);
    const B = tf.transpose(a.loraB);
    const dA = tf.mul(tf.matMul(B, G, true, false), a.scaling).dataSync(); // s B^T G [r, in]
    const dB = tf.mul(tf.matMul(G, A, false, true), a.scaling).dataSync(); // s G A^T [out, r]
    const gA = tf.transpose(grads[a.loraA.name]).dataSync();
    const gB = tf.transpose(grads[a.loraB.name]).dataSync();
    const scale = Math.max(1e-3, ...Array.from(dB).map(Math.abs), ...Array.from(dA).map(Math.abs));
    assert.ok(maxAbsDiff(gA, dA) / scale < 1e-3, `${a.prefix} dA`);
    assert.ok(maxAbsDiff(gB, dB) / scale < 1e-3, `${a.prefix} dB`);
    checked++;
  }));
  assert.is(checked, 2 * 7 + 4 * 5);
  // an AdamW step touches the adapters only; the base stays bit-identical
  const before = new Map([...m.namedParameters()].filter(([n]) => !n.includes('lora_')).map(([n, v]) => [n, Array.from(v.dataSync())]));
  const opt = new AdamW({ lr: 1e-2 });
  const gmap = new Map(vars.map(([n, v]) => [n, grads[v.name]]));
  const a0 = Array.from(adapters.get('model.layers.0.self_attn.q_proj')!.loraA.dataSync());
  opt.apply(m.trainableParameters(), gmap);
  for (const [n, v] of m.namedParameters()) if (before.has(n)) assert.equal(Array.from(v.dataSync()), before.get(n), n);
  assert.ok(maxAbsDiff(adapters.get('model.layers.0.self_attn.q_proj')!.loraA.dataSync(), a0) > 1e-4);
  assert.equal([...opt.state().m.keys()].sort(), vars.map(([n]) => n).sort());
  tf.dispose([value, ref.value, ...Object.values(grads), ...Object.values(ref.grads)]);
  inp.dispose();
  m.dispose();
  full.dispose();
});

test('a disabled or merged LoRA model runs the plain Linear path: no extra tensors per forward', () => {
  const m = tinyQwen(2);
  const inp = tinyInputs(m, false);
  const plain = tinyQwen(2);
  const count = async (model: Qwen2_5_VL) => {
    const info = await tf.profile(() => model.forward(inp).logits);
    tf.dispose(info.result as tf.Tensor);
    return { kernels: info.kernels.length };
  };
  return (async () => {
    const base = await count(plain);
    applyLora(m, { r: 2, alpha: 4 });
    setAdaptersEnabled(m, false);
    const off = await count(m);
    assert.is(off.kernels, base.kernels);
    setAdaptersEnabled(m, true);
    mergeLora(m);
    assert.is((await count(m)).kernels, base.kernels);
    inp.dispose();
    m.dispose();
    plain.dispose();
  })();
});

test.run();
