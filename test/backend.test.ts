import { backend } from './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

test('a backend runs and reports its provider', () => {
  assert.ok(['wasm', 'cpu', 'tensorflow'].includes(backend.name), backend.name);
  assert.is(tf.getBackend(), backend.name);
  assert.type(backend.provider, 'string');
});

test('kernels wasm lacks are bridged: gradient of gather (UnsortedSegmentSum) and einsum work', () => {
  if (backend.name === 'wasm') assert.ok(backend.bridged.includes('UnsortedSegmentSum'));
  const table = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
  const ids = tf.tensor1d([2, 0, 2], 'int32');
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, ids)))(table);
  assert.equal(Array.from(g.dataSync()), [1, 1, 0, 0, 2, 2]);
  const e = tf.einsum('ij,jk->ik', tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]));
  assert.equal(Array.from(e.dataSync()), [11]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) tf.tidy(() => { tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, ids)))(table); });
  assert.is(tf.memory().numTensors, before, 'bridged kernels leak nothing');
});

test('max-pool gradient matches a finite difference for several images and channels (wasm\'s own kernel does not)', () => {
  if (backend.name === 'wasm') assert.ok(backend.bridged.includes('MaxPoolGrad'), 'MaxPoolGrad is replaced on wasm');
  const cases: [number[], number, number, 'valid' | 'same'][] = [[[2, 8, 8, 3], 2, 2, 'valid'], [[2, 9, 9, 4], 3, 2, 'same'], [[1, 6, 6, 1], 2, 2, 'valid']];
  for (const [shape, k, s, pad] of cases) {
    tf.tidy(() => {
      const f = (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, k, s, pad);
      const x = tf.randomNormal(shape, 0, 1, 'float32', 5);
      const d = tf.randomNormal(shape, 0, 1, 'float32', 8);
      const w = tf.randomNormal(f(x).shape, 0, 1, 'float32', 6);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), w)))(x);
      const analytic = tf.sum(tf.mul(g, d)).dataSync()[0];
      const e = 1e-3;
      const fd = tf.sum(tf.mul(w, tf.sub(f(tf.add(x, tf.mul(d, e))), f(tf.sub(x, tf.mul(d, e)))))).dataSync()[0] / (2 * e);
      assert.ok(Math.abs(analytic - fd) < 1e-2, `${shape} k${k} s${s} ${pad}: <grad, d> ${analytic} but finite difference ${fd}`);
    });
  }
});

test('conv2d filter gradient (bridged on wasm) matches a finite difference', () => {
  const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
  const f = tf.tensor4d([0.5], [1, 1, 1, 1]);
  const g = tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 1, 'valid')))(f);
  assert.ok(Math.abs(g.dataSync()[0] - 10) < 1e-5);
});

test('fast conv2d filter gradient equals the cpu kernel (strides, padding, 1x1 and 7x7)', () => {
  const cases: { x: [number, number, number, number]; f: [number, number, number, number]; s: number; pad: 'valid' | 'same' | number }[] = [
    // numeric padding: tfjs-node's conv2d takes only 'valid' and 'same' (src/ uses 'valid' after tf.pad)
    ...(backend.name === 'tensorflow' ? [] : [{ x: [2, 9, 9, 3] as [number, number, number, number], f: [7, 7, 3, 4] as [number, number, number, number], s: 4, pad: 3 }, { x: [1, 8, 8, 5] as [number, number, number, number], f: [1, 1, 5, 6] as [number, number, number, number], s: 1, pad: 0 }]),
    { x: [2, 9, 9, 3], f: [7, 7, 3, 4], s: 4, pad: 'same' },
    { x: [1, 8, 8, 5], f: [1, 1, 5, 6], s: 1, pad: 'valid' },
    { x: [2, 7, 6, 2], f: [3, 3, 2, 3], s: 2, pad: 'same' },
    { x: [1, 6, 6, 2], f: [2, 2, 2, 2], s: 2, pad: 'valid' },
  ];
  const cpu = tf.findBackend('cpu')!;
  const cpuKernel = tf.getKernel('Conv2DBackpropFilter', 'cpu')!;
  for (const c of cases) {
    tf.tidy(() => {
      const x = tf.randomNormal(c.x, 0, 1, 'float32', 1) as tf.Tensor4D;
      const f = tf.randomNormal(c.f, 0, 1, 'float32', 2) as tf.Tensor4D;
      const y = tf.conv2d(x, f, c.s, c.pad);
      const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 3);
      const g = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, c.s, c.pad), dy)))(f);
      const put = (t: tf.Tensor) => ({ dataId: cpu.write(t.dataSync().slice(), t.shape, 'float32'), shape: t.shape, dtype: 'float32' as const });
      const ref = cpuKernel.kernelFunc({ inputs: { x: put(x), dy: put(dy) }, attrs: { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f }, backend: cpu }) as tf.TensorInfo;
      const want = cpu.readSync(ref.dataId) as Float32Array;
      const got = g.dataSync();
      assert.is(got.length, want.length);
      let err = 0;
      for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
      assert.ok(err < 1e-3, `${JSON.stringify(c)}: max error ${err}`);
    });
  }
});

test('batched matmul (split into batch-1 products on wasm) equals the cpu backend on broadcast operands: transposes and numpy batch broadcasting', async () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[3, 5, 4], [3, 4, 6], false, false],
    [[2, 3, 5, 4], [2, 3, 6, 4], false, true],
    [[2, 4, 5], [2, 4, 6], true, false],
    [[1, 5, 4], [3, 4, 2], false, false],
    [[3, 5, 4], [1, 4, 2], false, false],
    [[2, 1, 5, 4], [2, 3, 4, 2], false, false],
  ];
  // numpy broadcasting of the batch dims: the reference broadcasts both operands to the output batch
  // first (tfjs's own cpu kernel indexes [2,1] against [2,3] modulo the flat batch, which is wrong)
  const run = (be: string, broadcastFirst: boolean) => cases.map(([sa, sb, ta, tb]) => {
    tf.setBackend(be);
    return tf.tidy(() => {
      let a = tf.randomNormal(sa, 0, 1, 'float32', 1);
      let b = tf.randomNormal(sb, 0, 1, 'float32', 2);
      if (broadcastFirst) {
        const batch = sa.slice(0, -2).map((d, k) => Math.max(d, sb[k]));
        a = tf.broadcastTo(a, [...batch, ...sa.slice(-2)]);
        b = tf.broadcastTo(b, [...batch, ...sb.slice(-2)]);
      }
      return Array.from(tf.matMul(a, b, ta, tb).dataSync());
    });
  });
  const main = tf.getBackend();
  const got = run(main, false);
  const want = run('cpu', true);
  tf.setBackend(main);
  got.forEach((g, i) => {
    assert.is(g.length, want[i].length, JSON.stringify(cases[i]));
    const err = Math.max(...g.map((v, j) => Math.abs(v - want[i][j])));
    assert.ok(err < 1e-4, `${JSON.stringify(cases[i])}: ${err}`);
  });
  const before = tf.memory().numTensors;
  tf.tidy(() => { tf.matMul(tf.ones([4, 3, 2]), tf.ones([4, 2, 3])).dataSync(); });
  assert.is(tf.memory().numTensors, before);
});

test.run();
