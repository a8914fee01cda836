import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Module, LoadError } from '../src/nn/module.ts';
import { Conv2d, Embedding, LayerNorm, Linear, RMSNorm } from '../src/nn/layers.ts';
import { gelu, geluTanh, quickGelu, silu } from '../src/nn/activations.ts';
import { GatedMlp, Mlp } from '../src/nn/mlp.ts';
import { KVCache, MultiHeadAttention, causalMask, scaledDotProductAttention } from '../src/nn/attention.ts';
import { mapRowChunks, rowsWithin } from '../src/nn/chunk.ts';
import { applyRotary, inverseFrequenciesF32, rotateHalf } from '../src/nn/rotary.ts';
import { rotaryTables } from './helpers/rotary.ts';

function close(got: tf.Tensor | ArrayLike<number>, want: number[], tol = 1e-5, msg = ''): void {
  const g = got instanceof tf.Tensor ? Array.from(got.dataSync()) : Array.from(got);
  assert.is(g.length, want.length, `${msg} length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(g[i] - want[i]) <= tol, `${msg}[${i}]: ${g[i]} vs ${want[i]}`);
}

test('Linear computes x W^T + b with a PyTorch-layout weight', () => {
  const l = new Linear(null, 'fc', 2, 3);
  l.load(new Map<string, tf.Tensor>([['fc.weight', tf.tensor2d([[1, 2], [3, 4], [5, 6]])], ['fc.bias', tf.tensor1d([0.5, 0, -1])]]));
  close(l.forward(tf.tensor2d([[1, -1]])), [-0.5, -1, -2]);
  assert.equal(l.forward(tf.zeros([4, 5, 2])).shape, [4, 5, 3]);
  assert.equal([...l.namedParameters().keys()], ['fc.weight', 'fc.bias']);
  l.dispose();
});

test('LayerNorm and RMSNorm match hand-computed values', () => {
  const ln = new LayerNorm(null, 'ln', 4);
  close(ln.forward(tf.tensor2d([[1, 2, 3, 4]])), [-1.3416355, -0.4472118, 0.4472118, 1.3416355]);
  const rms = new RMSNorm(null, 'n', 2);
  rms.weight.assign(tf.tensor1d([1, 2]));
  close(rms.forward(tf.tensor2d([[3, 4]])), [0.8485281, 2.2627417]);
  ln.dispose();
  rms.dispose();
});

test('Conv2d on NCHW input: plain, padded/strided and depthwise', () => {
  const c = new Conv2d(null, 'c', 1, 1, 2);
  c.weight.assign(tf.tensor4d([1, 0, 0, 1], [1, 1, 2, 2]));
  c.bias!.assign(tf.tensor1d([0]));
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  close(c.forward(x), [6, 8, 12, 14]);
  const p = new Conv2d(null, 'p', 1, 1, 2, { stride: 2, padding: 1 });
  p.weight.assign(tf.tensor4d([1, 0, 0, 1], [1, 1, 2, 2]));
  p.bias!.assign(tf.tensor1d([1]));
  // padded input rows: [0 0 0 0 0], [0 1 2 3 0], ...; windows at (0,0),(0,2),(2,0),(2,2)
  close(p.forward(x), [2, 4, 8, 15]);
  const d = new Conv2d(null, 'd', 2, 2, 1, { groups: 2, bias: false });
  d.weight.assign(tf.tensor4d([2, -1], [2, 1, 1, 1]));
  close(d.forward(tf.tensor4d([1, 2, 3, 4], [1, 2, 1, 2])), [2, 4, -3, -4]);
  for (const m of [c, p, d]) m.dispose();
});

test('Embedding gathers rows by id', () => {
  const e = new Embedding(null, 'emb', 3, 2);
  e.weight.assign(tf.tensor2d([[0, 1], [2, 3], [4, 5]]));
  const out = e.forward(tf.tensor2d([[2, 0]], [1, 2], 'int32'));
  assert.equal(out.shape, [1, 2, 2]);
  close(out, [4, 5, 0, 1]);
  e.dispose();
});

test('activations match their closed forms', () => {
  const x = tf.tensor1d([1, -1, 0]);
  close(gelu(x), [0.8413447, -0.1586553, 0]);
  close(geluTanh(x), [0.8411920, -0.1588080, 0]);
  close(quickGelu(x), [0.8457957, -0.1542043, 0]);
  close(silu(x), [0.7310586, -0.2689414, 0]);
});

test('MLPs: fc2(act(fc1 x)) and the gated SwiGLU', () => {
  const m = new Mlp(null, 'mlp', 1, 1, { act: 'relu', names: ['c_fc', 'c_proj'] });
  assert.equal([...m.namedParameters().keys()], ['mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias']);
  m.fc1.weight.assign(tf.tensor2d([[2]])); m.fc1.bias!.assign(tf.tensor1d([-1])); // 1x1: layout-free
  m.fc2.weight.assign(tf.tensor2d([[3]])); m.fc2.bias!.assign(tf.tensor1d([1]));
  close(m.forward(tf.tensor2d([[1], [0]])), [4, 1]);
  const g = new GatedMlp(null, 'mlp', 1, 1);
  g.gate_proj.weight.assign(tf.tensor2d([[1]])); g.up_proj.weight.assign(tf.tensor2d([[2]])); g.down_proj.weight.assign(tf.tensor2d([[3]]));
  close(g.forward(tf.tensor2d([[1]])), [3 * 0.7310586 * 2]);
  m.dispose(); g.dispose();
});

test('scaled dot-product attention: softmax weights, additive mask, grouped kv heads', () => {
  const q = tf.tensor4d([1, 0], [1, 1, 1, 2]);
  const k = tf.tensor4d([1, 0, 0, 1], [1, 1, 2, 2]);
  const v = tf.tensor4d([10, 0, 0, 20], [1, 1, 2, 2]);
  const p0 = 1 / (1 + Math.exp(-1 / Math.SQRT2));
  close(scaledDotProductAttention(q, k, v), [10 * p0, 20 * (1 - p0)]);
  const mask = tf.tensor4d([-1e30, 0], [1, 1, 1, 2]);
  close(scaledDotProductAttention(q, k, v, { mask }), [0, 20]);
  const q2 = tf.concat([q, tf.neg(q)], 1) as tf.Tensor4D; // 2 query heads share one kv head
  const out = scaledDotProductAttention(q2, k, v);
  close(out, [10 * p0, 20 * (1 - p0), 10 * (1 - p0), 20 * p0]);
});

test('query-chunked attention equals the one-shot computation, masks included', () => {
  const q = tf.randomNormal([1, 2, 9, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
  const k = tf.randomNormal([1, 2, 9, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
  const v = tf.randomNormal([1, 2, 9, 4], 0, 1, 'float32', 3) as tf.Tensor4D;
  const mask = causalMask(9, 9);
  const full = scaledDotProductAttention(q, k, v, { mask });
  const chunked = scaledDotProductAttention(q, k, v, { mask, chunkElements: 2 * 9 * 2 });
  close(chunked, Array.from(full.dataSync()), 1e-6);
});

test('row chunks: same values and gradients (input included) as one call, parts freed', () => {
  const x = tf.variable(tf.randomNormal([7, 5], 0, 1, 'float32', 1));
  const w = tf.variable(tf.randomNormal([5, 4], 0, 1, 'float32', 2));
  const run = (rows: number) => {
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.square(mapRowChunks(x, rows, r => tf.tanh(tf.matMul(r, w))))) as tf.Scalar), [x, w]);
    const r = [value.dataSync()[0], Array.from(grads[x.name].dataSync()), Array.from(grads[w.name].dataSync())] as const;
    tf.dispose([value, ...Object.values(grads)]);
    return r;
  };
  const [v1, gx1, gw1] = run(100);
  for (const rows of [3, 1]) {
    const [v, gx, gw] = run(rows);
    assert.ok(Math.abs(v - v1) < 1e-5);
    gx.forEach((g, i) => assert.ok(Math.abs(g - gx1[i]) < 1e-5, `rows ${rows}: d/dx[${i}] ${g} vs ${gx1[i]}`));
    gw.forEach((g, i) => assert.ok(Math.abs(g - gw1[i]) < 1e-5, `rows ${rows}: d/dw[${i}]`));
  }
  const before = tf.memory().numTensors;
  const y = mapRowChunks(x, 2, r => tf.mul(r, 2));
  assert.is(tf.memory().numTensors, before + 1, 'only the output remains');
  assert.equal(y.shape, [7, 5]);
  tf.dispose([y, x, w]);
  assert.is(rowsWithin(100, 30), 3);
  assert.is(rowsWithin(10, 30), 1);
});

test('causal mask blocks future keys and padded keys', () => {
  const m = causalMask(2, 3, 1, tf.tensor2d([[0, 1, 1]]));
  const d = Array.from(m.dataSync());
  assert.equal(m.shape, [1, 1, 2, 3]);
  assert.ok(d[0] < -1e38 && d[1] === 0 && d[2] < -1e38, `row 0: ${d.slice(0, 3)}`);
  assert.ok(d[3] < -1e38 && d[4] === 0 && d[5] === 0, `row 1: ${d.slice(3)}`);
});

test('incremental decoding with the KV cache equals full causal attention', () => {
  const att = new MultiHeadAttention(null, 'attn', 8, { heads: 4, kvHeads: 2, bias: true });
  const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 7) as tf.Tensor3D;
  const full = att.forward(x, x, x, { mask: causalMask(5, 5) });
  const cache = new KVCache(1);
  const steps: tf.Tensor[] = [];
  for (let t = 0; t < 5; t++) {
    tf.tidy(() => {
      const xt = x.slice([0, t, 0], [2, 1, 8]) as tf.Tensor3D;
      const qh = att.splitHeads(att.q.forward(xt), att.heads);
      const [kc, vc] = cache.update(0, att.splitHeads(att.k.forward(xt), att.kvHeads), att.splitHeads(att.v.forward(xt), att.kvHeads));
      steps.push(tf.keep(att.o.forward(att.mergeHeads(scaledDotProductAttention(qh, kc, vc)))));
    });
  }
  assert.is(cache.length, 5);
  const inc = tf.concat(steps, 1);
  close(inc, Array.from(full.dataSync()), 1e-5, 'cached vs full');
  const before = tf.memory().numTensors;
  cache.dispose();
  assert.is(tf.memory().numTensors, before - 2);
  att.dispose();
});

test('rotary helpers: rotate_half and a known rotation', () => {
  close(rotateHalf(tf.tensor1d([1, 2, 3, 4])), [-3, -4, 1, 2]);
  const { cos, sin } = rotaryTables([1], 2, 10000);
  close(cos, [Math.cos(1), Math.cos(1)]);
  close(applyRotary(tf.tensor2d([[1, 0]]), cos, sin), [Math.cos(1), Math.sin(1)]);
  const t2 = rotaryTables([0, 3], 4, 100);
  close(t2.sin.slice([1, 0], [1, 4]), [Math.sin(3), Math.sin(0.3), Math.sin(3), Math.sin(0.3)]);
});

test('inverseFrequenciesF32: 1 / theta^(2i/dim) in float32, dim/2 of them', () => {
  const inv = inverseFrequenciesF32(4, 100);
  assert.instance(inv, Float32Array);
  assert.equal(Array.from(inv), [1, Math.fround(0.1)]);
  const q = inverseFrequenciesF32(8, 10000);
  assert.equal(Array.from(q), [1, Math.fround(0.1), Math.fround(0.01), Math.fround(0.001)]);
});

class Toy extends Module {
  readonly a: Linear;
  readonly b: Linear;
  constructor() {
    super(null, '');
    this.a = new Linear(this, 'enc.a', 3, 2);
    this.b = new Linear(this, 'enc.b', 2, 2, { bias: true });
  }
}

test('initialize(seed) re-draws every parameter from its own initialiser, reproducibly', () => {
  class Net extends Module {
    readonly fc: Linear;
    readonly emb: Embedding;
    readonly norm: LayerNorm;
    constructor() {
      super(null, '');
      this.fc = new Linear(this, 'fc', 400, 50);
      this.emb = new Embedding(this, 'emb', 300, 20);
      this.norm = new LayerNorm(this, 'norm', 20);
    }
  }
  const a = new Net().initialize(3);
  const b = new Net().initialize(3);
  const c = new Net().initialize(4);
  for (const [n, v] of a.namedParameters()) assert.equal(Array.from(v.dataSync()), Array.from(b.namedParameters().get(n)!.dataSync()), n);
  assert.not.equal(Array.from(a.fc.weight.dataSync()), Array.from(c.fc.weight.dataSync()));
  // Linear: uniform +-1/sqrt(in); Embedding: N(0, 1); LayerNorm: ones / zeros
  const w = a.fc.weight.dataSync();
  const bound = 1 / Math.sqrt(400);
  assert.ok(w.every(x => Math.abs(x) <= bound + 1e-7), 'uniform within the fan-in bound');
  assert.ok(Math.max(...w) > 0.9 * bound, 'and spread over it');
  const e = Array.from(a.emb.weight.dataSync());
  const std = Math.sqrt(e.reduce((s, x) => s + x * x, 0) / e.length);
  assert.ok(Math.abs(std - 1) < 0.05, `embedding std ${std}`);
  assert.ok(a.norm.weight.dataSync().every(x => x === 1));
  [a, b, c].forEach(m => m.dispose());
});

test('strict loading reports every missing, unexpected and mis-shaped key in one error', () => {
  const m = new Toy();
  const src = new Map<string, tf.Tensor>([
    ['enc.a.weight', tf.zeros([3, 2])],
    ['enc.a.bias', tf.zeros([2])],
    ['enc.b.weight', tf.zeros([2, 2])],
    ['extra.thing', tf.zeros([1])],
  ]);
  try {
    m.load(src, { where: 'toy.safetensors' });
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, LoadError);
    const le = e as LoadError;
    assert.equal(le.missing, ['enc.b.bias']);
    assert.equal(le.unexpected, ['extra.thing']);
    assert.equal(le.mismatched.map(x => x.key), ['enc.a.weight']);
    assert.match(le.message, /toy\.safetensors: weights do not fit the model: missing 1 \(enc\.b\.bias\); unexpected 1 \(extra\.thing\); shape mismatch 1 \(enc\.a\.weight: expected \[2,3\], got \[3,2\]\)/);
  }
  // nothing was assigned by the failed strict load
  assert.ok(Math.abs(m.b.weight.dataSync()[0]) > 0 || m.b.weight.dataSync()[1] !== 0);
  m.dispose();
});

test('loading through a mapping table with a transform, and trainable flags', () => {
  const m = new Toy();
  const src = new Map<string, tf.Tensor>([
    ['A.w', tf.tensor2d([[1, 2], [3, 4], [5, 6]])],
    ['A.b', tf.tensor1d([1, 1])],
    ['B.w', tf.eye(2)],
    ['B.b', tf.tensor1d([0, 0])],
    ['unused', tf.zeros([1])],
  ]);
  const rep = m.load(src, {
    map: { 'A.w': 'enc.a.weight', 'A.b': 'enc.a.bias', 'B.w': 'enc.b.weight', 'B.b': 'enc.b.bias' },
    transform: (p, t) => (p === 'enc.a.weight' ? tf.transpose(t) : t),
    ignore: k => k === 'unused',
  });
  assert.equal(rep.ignored, ['unused']);
  close(m.a.weight, [1, 2, 3, 4, 5, 6]); // held as [in, out] = the source's [3, 2]
  const ex = m.exportTensors();
  close(ex.get('enc.a.weight')!, [1, 3, 5, 2, 4, 6]);
  assert.equal(ex.get('enc.a.weight')!.shape, [2, 3]);
  for (const t of ex.values()) t.dispose();
  m.setTrainable(false, n => n.startsWith('enc.a'));
  assert.equal([...m.trainableParameters().keys()], ['enc.b.weight', 'enc.b.bias']);
  assert.is(m.parameterCount(), 6 + 2 + 4 + 2);
  const before = tf.memory().numTensors;
  m.dispose();
  assert.is(tf.memory().numTensors, before - 4);
});

test.run();
