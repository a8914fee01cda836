import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdamW, clipGradNorm } from '../src/optim/adamw.ts';
import { groupAdvantages, grpoLoss, grpoOutcomeAdvantages, klPenalty, maskedMean, tokenLevelRewards } from '../src/rl/index.ts';

test('AdamW matches a hand-computed two-step example (decoupled decay)', () => {
  const p = tf.variable(tf.tensor1d([1.0]));
  const opt = new AdamW({ lr: 0.1, weightDecay: 0.1 });
  const params = new Map([['p', p]]);
  opt.apply(params, new Map([['p', tf.tensor1d([0.5])]]));
  assert.ok(Math.abs(p.dataSync()[0] - 0.890000002) < 1e-6, `step 1: ${p.dataSync()[0]}`);
  opt.apply(params, new Map([['p', tf.tensor1d([-1.0])]]));
  assert.ok(Math.abs(p.dataSync()[0] - 0.9177103542205653) < 1e-6, `step 2: ${p.dataSync()[0]}`);
  assert.is(opt.step, 2);
  // state round-trips into a fresh optimizer that continues identically
  const s = opt.state();
  const q = tf.variable(p.clone());
  const opt2 = new AdamW({ lr: 0.1, weightDecay: 0.1 });
  opt2.loadState({ step: s.step, m: new Map([['q', s.m.get('p')!]]), v: new Map([['q', s.v.get('p')!]]) });
  opt.apply(params, new Map([['p', tf.tensor1d([0.25])]]));
  opt2.apply(new Map([['q', q]]), new Map([['q', tf.tensor1d([0.25])]]));
  assert.is(q.dataSync()[0], p.dataSync()[0]);
  opt.dispose(); opt2.dispose();
});

test('AdamW leaves no tensors behind across many steps', () => {
  const p = tf.variable(tf.randomNormal([16, 16]));
  const opt = new AdamW();
  const params = new Map([['p', p]]);
  opt.apply(params, new Map([['p', tf.onesLike(p)]]));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) {
    const g = tf.randomNormal([16, 16]);
    opt.apply(params, new Map([['p', g]]));
    g.dispose();
  }
  assert.is(tf.memory().numTensors, before);
  opt.dispose();
});

test('clipGradNorm scales to the max norm and reports the original norm', () => {
  const grads = new Map([['a', tf.tensor1d([3, 0])], ['b', tf.tensor1d([4])]]);
  const n = clipGradNorm(grads, 1);
  assert.ok(Math.abs(n - 5) < 1e-6);
  const a = grads.get('a')!.dataSync();
  assert.ok(Math.abs(a[0] - 0.6) < 1e-6);
  const small = new Map([['a', tf.tensor1d([0.1])]]);
  clipGradNorm(small, 1);
  assert.ok(Math.abs(small.get('a')!.dataSync()[0] - 0.1) < 1e-7);
  const bad = new Map([['a', tf.tensor1d([NaN])]]);
  assert.ok(Number.isNaN(clipGradNorm(bad, 1)));
});

test('group advantages: unbiased std, epsilon, group of one', () => {
  const adv = groupAdvantages([1, 2, 3, 5], [0, 0, 0, 1]);
  const std = 1; // unbiased std of [1, 2, 3]
  assert.ok(Math.abs(adv[0] - (1 - 2) / (std + 1e-6)) < 1e-6);
  assert.ok(Math.abs(adv[2] - 1 / (std + 1e-6)) < 1e-6);
  assert.ok(Math.abs(adv[3] - 5 / (1 + 1e-6)) < 1e-5, `group of one keeps its score: ${adv[3]}`);
  const same = groupAdvantages([2, 2], ['p', 'p']);
  assert.equal(Array.from(same), [0, 0]);
});

test('token-level rewards sit on the last response token and advantages broadcast over the mask', () => {
  const mask = tf.tensor2d([[1, 1, 0], [1, 1, 1]]);
  const tl = tokenLevelRewards([2, 3], mask);
  assert.equal(Array.from(tl.dataSync()), [0, 2, 0, 0, 0, 3]);
  const adv = grpoOutcomeAdvantages(tl, mask, [0, 0]);
  const a = adv.dataSync();
  assert.ok(Math.abs(a[0] + 0.7071061) < 1e-5 && a[2] === 0 && Math.abs(a[3] - 0.7071061) < 1e-5, `${Array.from(a)}`);
});

test('the loss: on-policy ratio 1 gives -mean(A); low_var_kl is clamped', () => {
  const lp = tf.tensor2d([[-1, -2], [-0.5, -3]]);
  const adv = tf.tensor2d([[1, 1], [-1, -1]]);
  const mask = tf.tensor2d([[1, 1], [1, 0]]);
  const out = grpoLoss({ logProbs: lp, oldLogProbs: lp, refLogProbs: lp, advantages: adv, mask, entropy: null });
  assert.ok(Math.abs(out.pgLoss.dataSync()[0] - -(1 + 1 - 1) / 3) < 1e-6);
  assert.is(out.clipFrac.dataSync()[0], 0);
  assert.is(out.klLoss.dataSync()[0], 0);
  const k = klPenalty(tf.tensor1d([0]), tf.tensor1d([20])).dataSync()[0];
  assert.is(k, 10);
  assert.ok(Math.abs(maskedMean(tf.tensor1d([1, 2, 3]), tf.tensor1d([1, 0, 1])).dataSync()[0] - 2) < 1e-7);
  const withEnt = grpoLoss({ logProbs: lp, oldLogProbs: lp, refLogProbs: null, advantages: adv, mask, entropy: tf.onesLike(lp) }, { entropyCoef: 0.5 });
  assert.ok(Math.abs(withEnt.loss.dataSync()[0] - (-(1 / 3) - 0.5)) < 1e-6);
});

test("kl type 'abs' has torch's gradient: 0 where logp equals ref, the sign elsewhere", () => {
  const ref = tf.tensor1d([0.5, 0.5, 0.5]);
  const g = tf.grad((x: tf.Tensor) => tf.sum(klPenalty(x, ref, 'abs')))(tf.tensor1d([0.5, 1, 0]));
  assert.equal(Array.from(g.dataSync()), [0, 1, -1]);
  assert.equal(Array.from(klPenalty(tf.tensor1d([0.5, 1, 0]), ref, 'abs').dataSync()), [0, 0.5, 0.5]);
});

test.run();
