import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Linear } from '../src/nn/layers.ts';
import { isLoraParam, LoraAdapter, loraScaling } from '../src/nn/lora.ts';
import { maxAbsDiff } from './helpers/lora.ts';

/** A Linear 5 -> 3 with seeded weights and an adapter of rank 2 whose B is seeded too. */
function layer(opts: { alpha?: number; rslora?: boolean; dropout?: number } = {}) {
  const lin = new Linear(null, 'fc', 5, 3);
  lin.weight.assign(tf.randomNormal([5, 3], 0, 0.5, 'float32', 1));
  lin.bias!.assign(tf.randomNormal([3], 0, 0.5, 'float32', 2));
  const a = new LoraAdapter(lin, { r: 2, alpha: opts.alpha ?? 6, rslora: opts.rslora, dropout: opts.dropout });
  a.initialize(3);
  a.loraB.assign(tf.randomNormal([2, 3], 0, 0.5, 'float32', 4));
  return { lin, a };
}

/** PEFT layout arrays of a module's parameters: W [out][in], b, A [r][in], B [out][r]. */
function peftArrays(lin: Linear) {
  const ex = lin.exportTensors();
  const get = (k: string) => ex.get(k)!.arraySync() as number[][];
  const out = { W: get('fc.weight'), b: ex.get('fc.bias')!.arraySync() as unknown as number[], A: get('fc.lora_A.weight'), B: get('fc.lora_B.weight') };
  tf.dispose([...ex.values()]);
  return out;
}

test('LoRA output is W x + b + (alpha / r) B A x, computed by hand from the PEFT-layout tensors', () => {
  for (const rslora of [false, true]) {
    const { lin, a } = layer({ rslora });
    const s = rslora ? 6 / Math.sqrt(2) : 6 / 2;
    assert.is(a.scaling, s);
    assert.is(loraScaling(2, 6, rslora), s);
    const { W, b, A, B } = peftArrays(lin);
    const x = [0.3, -1.2, 0.7, 2.0, -0.4];
    const Ax = A.map(row => row.reduce((t, w, i) => t + w * x[i], 0));
    const want = W.map((row, o) => row.reduce((t, w, i) => t + w * x[i], b[o]) + s * B[o].reduce((t, w, k) => t + w * Ax[k], 0));
    const y = lin.forward(tf.tensor2d([x]));
    assert.ok(maxAbsDiff(y.dataSync(), want) < 1e-5, `rslora=${rslora}: ${y.dataSync()} vs ${want}`);
    y.dispose();
    lin.dispose();
  }
});

test('a fresh adapter is the identity (B = 0) and A is drawn as kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(in))', () => {
  const lin = new Linear(null, 'fc', 16, 4);
  const x = tf.randomNormal([3, 16], 0, 1, 'float32', 5);
  const before = lin.forward(x).dataSync();
  const a = new LoraAdapter(lin, { r: 8, alpha: 16 });
  const after = lin.forward(x).dataSync();
  assert.equal(Array.from(after), Array.from(before));
  const A = a.loraA.dataSync();
  assert.ok(A.every(v => Math.abs(v) <= 1 / 4) && A.some(v => v !== 0));
  assert.ok(a.loraB.dataSync().every(v => v === 0));
  const ex = lin.exportTensors();
  assert.equal(ex.get('fc.lora_A.weight')!.shape, [8, 16]);
  assert.equal(ex.get('fc.lora_B.weight')!.shape, [4, 8]);
  assert.equal([...lin.namedParameters().keys()], ['fc.weight', 'fc.bias', 'fc.lora_A.weight', 'fc.lora_B.weight']);
  assert.ok(isLoraParam('fc.lora_A.weight') && isLoraParam('lora_B.weight') && !isLoraParam('fc.weight') && !isLoraParam('fc.xlora_A.weight'));
  tf.dispose([...ex.values(), x]);
  lin.dispose();
});

test('adapter off gives exactly the base layer; on again gives the adapted output', () => {
  const { lin, a } = layer();
  const x = tf.randomNormal([4, 5], 0, 1, 'float32', 6);
  const adapted = Array.from(lin.forward(x).dataSync());
  a.setEnabled(false);
  assert.is(a.enabled, false);
  const base = Array.from(lin.forward(x).dataSync());
  const plain = new Linear(null, 'p', 5, 3);
  plain.weight.assign(lin.weight);
  plain.bias!.assign(lin.bias!);
  assert.equal(base, Array.from(plain.forward(x).dataSync()));
  assert.ok(maxAbsDiff(base, adapted) > 1e-3);
  a.setEnabled(true);
  assert.equal(Array.from(lin.forward(x).dataSync()), adapted);
  tf.dispose(x);
  lin.dispose();
  plain.dispose();
});

test('merge folds scaling * B A into the held [in, out] weight; unmerge takes it back; a merged adapter cannot be switched off', () => {
  const { lin, a } = layer();
  const { W, A, B } = peftArrays(lin);
  const x = tf.randomNormal([4, 5], 0, 1, 'float32', 7);
  const adapted = lin.forward(x).dataSync();
  const nTensors = tf.memory().numTensors;
  a.merge();
  assert.is(tf.memory().numTensors, nTensors);
  assert.is(a.merged, true);
  const merged = peftArrays(lin).W;
  for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) {
    const want = W[o][i] + 3 * (B[o][0] * A[0][i] + B[o][1] * A[1][i]);
    assert.ok(Math.abs(merged[o][i] - want) < 1e-6, `W[${o}][${i}]`);
  }
  assert.ok(maxAbsDiff(lin.forward(x).dataSync(), adapted) < 1e-5);
  assert.throws(() => a.setEnabled(false), (e: Error) => e.message === 'fc: the adapter is merged into the base weight; unmerge() it before switching it off');
  a.unmerge();
  assert.ok(maxAbsDiff(peftArrays(lin).W.flat(), W.flat()) < 1e-6);
  assert.ok(maxAbsDiff(lin.forward(x).dataSync(), adapted) < 1e-5);
  tf.dispose(x);
  lin.dispose();
});

test('gradients: dL/dA = s B^T G and dL/dB = s G A^T with G = dL/dW of the merged weight (PEFT layout)', () => {
  const { lin, a } = layer();
  const x = tf.randomNormal([6, 5], 0, 1, 'float32', 8);
  const t = tf.randomNormal([6, 3], 0, 1, 'float32', 9);
  const loss = () => tf.sum(tf.square(tf.sub(lin.forward(x), t))) as tf.Scalar;
  const { grads } = tf.variableGrads(loss, [a.loraA, a.loraB]);
  // full fine-tuning gradient at W' = W + s B A, on a plain layer holding W'
  const full = new Linear(null, 'full', 5, 3);
  full.weight.assign(tf.add(lin.weight, a.deltaWeightHeld()));
  full.bias!.assign(lin.bias!);
  const g = tf.variableGrads(() => tf.sum(tf.square(tf.sub(full.forward(x), t))) as tf.Scalar, [full.weight]).grads[full.weight.name];
  const G = tf.transpose(g); // [out, in]
  const A = tf.transpose(a.loraA); // [r, in]
  const B = tf.transpose(a.loraB); // [out, r]
  const dA = tf.mul(tf.matMul(B, G, true, false), a.scaling); // [r, in]
  const dB = tf.mul(tf.matMul(G, A, false, true), a.scaling); // [out, r]
  assert.ok(maxAbsDiff(tf.transpose(grads[a.loraA.name]).dataSync(), dA.dataSync()) < 1e-4);
  assert.ok(maxAbsDiff(tf.transpose(grads[a.loraB.name]).dataSync(), dB.dataSync()) < 1e-4);
  tf.dispose([x, t, g, G, A, B, dA, dB, ...Object.values(grads)]);
  lin.dispose();
  full.dispose();
});

test('dropout acts only while training, with reproducible seeded masks', () => {
  const { lin, a } = layer({ dropout: 0.5 });
  const x = tf.randomNormal([8, 5], 0, 1, 'float32', 10);
  const evalOut = Array.from(lin.forward(x).dataSync());
  a.training = true;
  a.dropoutSeed = 42;
  const d1 = Array.from(lin.forward(x).dataSync());
  assert.is(a.dropoutSeed, 43);
  a.dropoutSeed = 42;
  const d2 = Array.from(lin.forward(x).dataSync());
  assert.equal(d1, d2);
  assert.ok(maxAbsDiff(d1, evalOut) > 1e-3);
  a.training = false;
  assert.equal(Array.from(lin.forward(x).dataSync()), evalOut);
  tf.dispose(x);
  lin.dispose();
});

test('bad options and a second adapter are refused, naming the layer', () => {
  const lin = new Linear(null, 'fc', 4, 4);
  assert.throws(() => new LoraAdapter(lin, { r: 0, alpha: 8 }), (e: Error) => e.message === 'fc: LoRA rank r must be an integer >= 1, got 0');
  assert.throws(() => new LoraAdapter(lin, { r: 2, alpha: 8, dropout: 1 }), (e: Error) => e.message === 'fc: LoRA dropout must be in [0, 1), got 1');
  const a = new LoraAdapter(lin, { r: 2, alpha: 8 });
  assert.throws(() => new LoraAdapter(lin, { r: 2, alpha: 8 }), (e: Error) => e.message === 'fc: the layer already has an adapter');
  a.dispose();
  assert.is(lin.adapter, null);
  assert.equal([...lin.namedParameters().keys()], ['fc.weight', 'fc.bias']);
  lin.dispose();
});

test.run();
