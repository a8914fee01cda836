import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { actorLoss, actorMicroBatchLoss, microBatchSplits } from '../src/rl/actor.ts';
import { defaultStepCount } from '../src/rl/config.ts';
import { policyGradients, responseIds, responseLogits, responseLogProbs } from '../src/rl/update.ts';
import { GrpoTrainer } from '../src/rl/trainer.ts';
import { trainConfig } from '../src/rl/config.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const CFG = { clipRatio: 0.2, entropyCoef: 1e-3, klCoef: 5e-3, klType: 'low_var_kl' as const, temperature: 1 };

/** dp_actor.update_policy written out in doubles: rows [B][R][V] */
function referenceLoss(logits: number[][][], resp: number[][], mask: number[][], old: number[][], ref: number[][], adv: number[][], micro: number, T = 1): number {
  const B = logits.length;
  let total = 0;
  for (let s = 0; s < B; s += micro) {
    let n = 0, pg = 0, ent = 0, kl = 0;
    for (let b = s; b < Math.min(B, s + micro); b++) {
      for (let t = 0; t < resp[b].length; t++) {
        const z = logits[b][t].map(x => x / T);
        const mx = Math.max(...z);
        const lse = mx + Math.log(z.reduce((a, x) => a + Math.exp(x - mx), 0));
        const lp = z[resp[b][t]] - lse;
        const p = z.map(x => Math.exp(x - lse));
        const m = mask[b][t];
        const ratio = Math.exp(lp - old[b][t]);
        const clipped = Math.min(Math.max(ratio, 1 - CFG.clipRatio), 1 + CFG.clipRatio);
        pg += m * Math.max(-adv[b][t] * ratio, -adv[b][t] * clipped);
        ent += m * (lse - p.reduce((a, pi, i) => a + pi * z[i], 0));
        const d = ref[b][t] - lp;
        kl += m * Math.min(10, Math.max(-10, Math.exp(d) - d - 1));
        n += m;
      }
    }
    total += (pg / n - CFG.entropyCoef * ent / n + CFG.klCoef * kl / n) / Math.floor(B / micro);
  }
  return total;
}

function randomCase(seed: number) {
  const B = 4, R = 5, V = 7;
  const lengths = [5, 1, 3, 2]; // unequal lengths: micro-batch 1 and the token mean differ
  const logits = tf.randomNormal([B, R, V], 0, 1.5, 'float32', seed) as tf.Tensor3D;
  const old = tf.randomNormal([B, R], -1.5, 0.3, 'float32', seed + 1) as tf.Tensor2D;
  const ref = tf.randomNormal([B, R], -1.5, 0.3, 'float32', seed + 2) as tf.Tensor2D;
  const responses = tf.tensor2d(Array.from({ length: B * R }, (_, i) => (i * 5 + seed) % V), [B, R], 'int32');
  const mask = tf.tensor2d(Array.from({ length: B * R }, (_, i) => (i % R < lengths[Math.floor(i / R)] ? 1 : 0)), [B, R]);
  const advantages = tf.mul(tf.tensor2d([1.2, -0.7, 0.4, -1.1], [B, 1]), mask) as tf.Tensor2D;
  return { logits, oldLogProbs: old, refLogProbs: ref, responses, mask, advantages };
}

test('actorLoss follows dp_actor: micro-batch 1 = per-response token mean averaged over responses', () => {
  const c = randomCase(5);
  const arr = <T>(t: tf.Tensor) => t.arraySync() as T;
  const args = [arr<number[][][]>(c.logits), arr<number[][]>(c.responses), arr<number[][]>(c.mask), arr<number[][]>(c.oldLogProbs), arr<number[][]>(c.refLogProbs), arr<number[][]>(c.advantages)] as const;
  const per = [1, 2, 4].map(micro => actorLoss(c, { ...CFG, microBatch: micro }).loss.dataSync()[0]);
  [1, 2, 4].forEach((micro, k) => {
    const want = referenceLoss(...args, micro);
    assert.ok(Math.abs(per[k] - want) < 1e-6, `micro ${micro}: ${per[k]} vs ${want}`);
  });
  assert.ok(Math.abs(per[0] - per[2]) > 1e-3, `micro-batch 1 (${per[0]}) is not the batch token mean (${per[2]})`);
  // the temperature divides the logits before the log-probs and the entropy
  const warm = actorLoss(c, { ...CFG, temperature: 0.5, microBatch: 1 }).loss.dataSync()[0];
  assert.ok(Math.abs(warm - referenceLoss(...args, 1, 0.5)) < 1e-6);
  // the logged terms are the means over micro-batches
  const m = actorLoss(c, { ...CFG, microBatch: 1 }).metrics;
  const rowsPg = [0, 1, 2, 3].map(b => actorMicroBatchLoss({
    logits: c.logits.slice(b, 1), responses: c.responses.slice(b, 1), mask: c.mask.slice(b, 1), oldLogProbs: c.oldLogProbs.slice(b, 1),
    refLogProbs: c.refLogProbs.slice(b, 1), advantages: c.advantages.slice(b, 1),
  }, CFG).pgLoss.dataSync()[0]);
  assert.ok(Math.abs(m.pgLoss - rowsPg.reduce((a, x) => a + x, 0) / 4) < 1e-7);
});

test('micro-batches split rows in order; the divisor is batch // microBatch', () => {
  assert.equal(microBatchSplits(8, 1).slices.length, 8);
  assert.is(microBatchSplits(8, 1).gradientAccumulation, 8);
  assert.equal(microBatchSplits(6, 4), { slices: [{ start: 0, size: 4 }, { start: 4, size: 2 }], gradientAccumulation: 1 });
  assert.throws(() => microBatchSplits(4, 0), /actor: micro_batch_size must be a positive integer \(got 0\)/);
  const c = randomCase(2);
  assert.throws(() => actorMicroBatchLoss(c, CFG, { entropy: false }), /actor: the entropy can only be skipped when entropyCoef is 0 \(got 0.001\)/);
  assert.throws(() => actorLoss({ ...c, mask: tf.ones([4, 3]) as tf.Tensor2D }, { ...CFG, microBatch: 1 }), /actor: mask has shape \[4,3\], the logits \[4,5,7\]/);
});

test('default step count is len(dataloader) - 1 (186 for 3,000 prompts); "epoch" is the full pass', () => {
  assert.is(defaultStepCount(3000, 16, 'verl'), 186);
  assert.is(defaultStepCount(2000, 16, 'verl'), 124);
  assert.is(defaultStepCount(3000, 16, 'epoch'), 187);
  assert.is(defaultStepCount(16, 16, 'verl'), 0);
  assert.is(defaultStepCount(10, 16, 'epoch'), 1);
  assert.throws(() => defaultStepCount(10, 16, 'verl'), /config: 10 prompts make no full batch of promptsPerStep 16 \(the last partial batch is dropped\); set 'steps'/);
  const { policy, reference } = tinyPolicy(8);
  const mk = (extra: object) => new GrpoTrainer({ config: trainConfig({ promptsPerStep: 2, samplesPerPrompt: 2, rewards: { variant: 'baseline' } as never, ...extra }), policy, reference, scorer: null, data: worldDataset(9) });
  assert.is(mk({}).totalSteps, 3);
  assert.is(mk({ stepCount: 'epoch' }).totalSteps, 4);
  assert.is(mk({ steps: 7 }).totalSteps, 7);
  policy.model.dispose(); reference.dispose();
});

test('the trainer\'s gradients are those of actorLoss over the policy\'s logits, for each micro-batch size', () => {
  const { policy, reference } = tinyPolicy(11);
  const model = policy.model;
  const norm = model.namedParameters().get('model.norm.weight')!;
  norm.assign(tf.mul(norm, 4)); // the policy drifts from the reference: a non-zero KL
  const B = 4, P = 3, R = 4;
  const lens = [4, 2, 3, 1];
  const pad = model.config.pad_token_id;
  const ids = new Int32Array(B * (P + R)).fill(pad);
  const att = new Int32Array(B * (P + R));
  const mask = new Float32Array(B * R);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < P + lens[b]; j++) { ids[b * (P + R) + j] = 20 + ((b * 7 + j * 3) % 40); att[b * (P + R) + j] = 1; }
    mask.fill(1, b * R, b * R + lens[b]);
  }
  const adv = new Float32Array([0.9, -1.3, 0.2, 0.6]);
  const seqOf = (start: number, size: number) => ({
    ids: ids.slice(start * (P + R), (start + size) * (P + R)), batch: size, promptLength: P, responseLength: R,
    attentionMask: att.slice(start * (P + R), (start + size) * (P + R)),
  });
  const pack = (start: number, size: number) => ({ seq: seqOf(start, size), mask: mask.slice(start * R, (start + size) * R), advantages: adv.slice(start, start + size), dispose: () => {} });
  const vars = [...model.trainableParameters()];
  for (const micro of [1, 2]) {
    const cfg = { ...CFG, microBatch: micro };
    const got = policyGradients(model, reference, B, pack, cfg);
    const full = seqOf(0, B);
    const inputs = tf.tidy(() => {
      const m = tf.tensor2d(mask, [B, R]);
      return {
        mask: m, responses: responseIds(full), advantages: tf.mul(tf.tensor2d(adv, [B, 1]), m) as tf.Tensor2D,
        oldLogProbs: responseLogProbs(model, full, 1), refLogProbs: responseLogProbs(reference, full, 1),
      };
    });
    let wantLoss = NaN;
    const want = tf.variableGrads(() => {
      const l = actorLoss({ ...inputs, logits: responseLogits(model, full) }, cfg).loss;
      wantLoss = l.dataSync()[0];
      return l;
    }, vars.map(([, v]) => v));
    assert.ok(Math.abs(got.loss - wantLoss) < 1e-6, `micro ${micro}: loss ${got.loss} vs ${wantLoss}`);
    assert.ok(got.metrics.klLoss > 1e-4, `a non-zero KL term (${got.metrics.klLoss})`);
    assert.ok(Math.abs(got.metrics.ppoKl) < 1e-6, 'logp_old = logp');
    let worst = 0, scale = 0;
    // text-only rows: the vision tower gets no gradient on either side
    assert.equal([...got.grads.keys()].sort(), vars.filter(([, v]) => v.name in want.grads).map(([n]) => n).sort());
    assert.ok(got.grads.size > 0);
    for (const [n, v] of vars) {
      if (!got.grads.has(n)) continue;
      const a = got.grads.get(n)!.dataSync(), w = want.grads[v.name].dataSync();
      for (let i = 0; i < a.length; i++) { worst = Math.max(worst, Math.abs(a[i] - w[i])); scale = Math.max(scale, Math.abs(w[i])); }
    }
    assert.ok(scale > 0 && worst <= 1e-5 * scale + 1e-9, `micro ${micro}: gradient differs by ${worst} (scale ${scale})`);
    tf.dispose([...got.grads.values(), ...Object.values(want.grads), want.value, inputs.mask, inputs.responses, inputs.advantages, inputs.oldLogProbs, inputs.refLogProbs]);
  }
  model.dispose(); reference.dispose();
});

test.run();
