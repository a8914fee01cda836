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

test('conv2d filter gradient (bridged on wasm) matches a finite difference', () => {
  const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
  const f = tf.tensor4d([0.5], [1, 1, 1, 1]);
  const g = tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 1, 'valid')))(f);
  assert.ok(Math.abs(g.dataSync()[0] - 10) < 1e-5);
});

test.run();
