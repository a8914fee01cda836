/**
 * The checkpointed response pass (models/qwen2_5_vl/checkpointed.ts) against the plain forward on
 * the tiny fixture config: the same response logits / log-probs, the same gradients w.r.t. LoRA
 * adapters (decoder and vision, with seeded dropout) and w.r.t. every parameter (tied head), and
 * a peak of tensor bytes during the backward pass that does not grow with the layers' activations
 * (only with their kept half-layer inputs); the MLP halves' backward in chunks of positions is exact too.
 */
import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpointedGrads, checkpointedResponseLogits, MemoryPeak } from '../src/models/qwen2_5_vl/checkpointed.ts';
import type { SequenceBatch } from '../src/models/qwen2_5_vl/generate.ts';
import { applyLora, setLoraTraining } from '../src/models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { logProbsFromLogits } from '../src/rl/actor.ts';
import { policyGradients, responseIds, responseLogits } from '../src/rl/update.ts';
import { maxAbsDiff, randomizeAdapters, tinyInputs, tinyQwen } from './helpers/lora.ts';

const P = 6;
const R = 3;

/** tinyInputs as a packed batch: 2 rows of 9 tokens (row 0 with the image), row 1 left-padded by one */
function batchOf(model: Qwen2_5_VL, withImage = true): SequenceBatch & { dispose(): void } {
  const inp = tinyInputs(model, withImage);
  const attentionMask = new Int32Array(18).fill(1);
  attentionMask[9] = 0;
  return { ids: inp.ids, batch: 2, promptLength: P, responseLength: R, attentionMask, pixelValues: inp.pixelValues, grids: inp.grids, dispose: inp.dispose };
}

/** a loss of the response logits that weighs every log-prob differently (seeded) */
function lossOf(s: SequenceBatch): (lg: tf.Tensor3D) => tf.Scalar {
  const w = tf.randomNormal([s.batch, s.responseLength], 0, 1, 'float32', 5);
  const ids = responseIds(s);
  return lg => tf.tidy(() => tf.add(tf.sum(tf.mul(logProbsFromLogits(lg, ids), w)), tf.mul(0.01, tf.sum(tf.square(lg)))) as tf.Scalar);
}

function plainGrads(model: Qwen2_5_VL, s: SequenceBatch, loss: (lg: tf.Tensor3D) => tf.Scalar, vars: tf.Variable[]) {
  return tf.variableGrads(() => loss(responseLogits(model, s)), vars);
}

/** the largest |a - b| over all gradients, relative to max(1, the largest |b|) */
function compareGrads(a: tf.NamedTensorMap, b: tf.NamedTensorMap): { worst: number; names: number } {
  assert.equal(Object.keys(a).sort(), Object.keys(b).sort());
  let worst = 0;
  for (const k of Object.keys(b)) {
    const x = a[k].dataSync();
    const y = b[k].dataSync();
    const scale = Math.max(1, ...Array.from(y, Math.abs));
    worst = Math.max(worst, maxAbsDiff(x, y) / scale);
  }
  return { worst, names: Object.keys(b).length };
}

test('the response logits and log-probs equal the plain forward', () => {
  const model = tinyQwen(1);
  const s = batchOf(model);
  const a = checkpointedResponseLogits(model, s);
  const b = responseLogits(model, s);
  assert.equal(a.shape, [2, R, model.config.vocab_size]);
  assert.ok(maxAbsDiff(a.dataSync(), b.dataSync()) <= 1e-5, `logits differ by ${maxAbsDiff(a.dataSync(), b.dataSync())}`);
  const ids = responseIds(s);
  const la = logProbsFromLogits(a, ids);
  const lb = logProbsFromLogits(b, ids);
  assert.ok(maxAbsDiff(la.dataSync(), lb.dataSync()) <= 1e-5);
  tf.dispose([a, b, ids, la, lb]);
  s.dispose();
  model.dispose();
});

test('LoRA gradients (decoder and vision adapters, seeded dropout) equal tf.variableGrads over the plain forward', () => {
  const model = tinyQwen(2);
  applyLora(model, { r: 4, alpha: 8, dropout: 0.25, vision: true, seed: 3 });
  randomizeAdapters(model, 7);
  const s = batchOf(model);
  const loss = lossOf(s);
  const vars = [...model.trainableParameters().values()];
  setLoraTraining(model, true, 11);
  const plain = plainGrads(model, s, loss, vars);
  setLoraTraining(model, true, 11);
  const ck = checkpointedGrads(model, s, loss, vars);
  const { worst, names } = compareGrads(ck.grads, plain.grads);
  assert.ok(names >= 8 && names === vars.length, `${names} gradients for ${vars.length} adapters' parameters`);
  assert.ok(worst <= 1e-5, `gradients differ by ${worst}`);
  assert.ok(Math.abs(ck.value.dataSync()[0] - plain.value.dataSync()[0]) <= 1e-5);
  // the masks were the plain pass's: without dropout the gradients would differ
  setLoraTraining(model, false);
  const off = checkpointedGrads(model, s, loss, vars, { mlpChunk: 2 }); // no dropout: the MLP halves' backward in chunks of 2 positions
  assert.ok(compareGrads(off.grads, plain.grads).worst > 1e-4, 'dropout made no difference: the test would not see a mask mismatch');
  const plainOff = plainGrads(model, s, loss, vars);
  assert.ok(compareGrads(off.grads, plainOff.grads).worst <= 1e-5, `chunked MLP backward differs by ${compareGrads(off.grads, plainOff.grads).worst}`);
  tf.dispose([plain.value, ck.value, off.value, plainOff.value, ...Object.values(plain.grads), ...Object.values(ck.grads), ...Object.values(off.grads), ...Object.values(plainOff.grads)]);
  s.dispose();
  model.dispose();
});

test('full-parameter gradients (tied head, vision tower, embedding) equal the plain pass', () => {
  const model = tinyQwen(3, { tie_word_embeddings: true });
  const s = batchOf(model);
  const loss = lossOf(s);
  const vars = [...model.trainableParameters().values()];
  const plain = plainGrads(model, s, loss, vars);
  const ck = checkpointedGrads(model, s, loss, vars, { mlpChunk: 4 });
  const { worst, names } = compareGrads(ck.grads, plain.grads);
  assert.ok(names > 50, `only ${names} gradients`);
  assert.ok(ck.grads[model.model.embed_tokens.weight.name] !== undefined && ck.grads[model.visual.namedParameters().values().next().value!.name] !== undefined);
  assert.ok(worst <= 1e-5, `gradients differ by ${worst}`);
  tf.dispose([plain.value, ck.value, ...Object.values(plain.grads), ...Object.values(ck.grads)]);
  s.dispose();
  model.dispose();
});

test('no tensor is left behind', () => {
  const model = tinyQwen(4);
  applyLora(model, { r: 2, alpha: 4 });
  randomizeAdapters(model);
  const s = batchOf(model, false);
  const loss = lossOf(s);
  const vars = [...model.trainableParameters().values()];
  tf.dispose(checkpointedGrads(model, s, loss, vars).value); // warm-up (cached constants)
  const before = tf.memory().numTensors;
  const r = checkpointedGrads(model, s, loss, vars);
  tf.dispose([r.value, ...Object.values(r.grads)]);
  tf.dispose(checkpointedResponseLogits(model, s));
  assert.is(tf.memory().numTensors, before);
  s.dispose();
  model.dispose();
});

/** peak tensor bytes above the start during one gradient call, with every kernel's snapshot (tf.profile) */
async function peakAbove(fn: () => tf.TensorContainer): Promise<number> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(() => { tf.dispose(fn()); });
  return info.peakBytes - start;
}

test('peak tensor bytes of the backward pass: one half layer of activations, not all of them', async () => {
  const L = 96;
  const B = 2;
  const run = async (layers: number) => {
    const model = tinyQwen(5, { num_hidden_layers: layers });
    applyLora(model, { r: 2, alpha: 4 });
    randomizeAdapters(model);
    const ids = Int32Array.from({ length: B * L }, (_, i) => 20 + (i * 7) % 60);
    const s: SequenceBatch = { ids, batch: B, promptLength: L - 4, responseLength: 4, attentionMask: new Int32Array(B * L).fill(1) };
    const loss = lossOf(s);
    const vars = [...model.trainableParameters().values()];
    const mem = new MemoryPeak();
    const start = tf.memory().numBytes;
    const ck = await peakAbove(() => { const r = checkpointedGrads(model, s, loss, vars, { memory: mem }); return [r.value, ...Object.values(r.grads)]; });
    const plain = await peakAbove(() => { const r = plainGrads(model, s, loss, vars); return [r.value, ...Object.values(r.grads)]; });
    model.dispose();
    return { ck, plain, sampled: mem.peakBytes - start, samples: mem.samples };
  };
  const two = await run(2);
  const eight = await run(8);
  const D = 48;
  const kept = 2 * B * L * D * 4; // the inputs of a layer's two halves, held per layer
  const ckGrowth = eight.ck - two.ck;
  const plainGrowth = eight.plain - two.plain;
  // 6 more layers cost the checkpointed pass their halves' inputs (and their small adapter gradients) only
  assert.ok(ckGrowth <= 6 * kept * 1.25, `checkpointed peak grew by ${ckGrowth} bytes for 6 layers (inputs ${6 * kept})`);
  assert.ok(plainGrowth > 4 * ckGrowth, `plain growth ${plainGrowth} vs checkpointed ${ckGrowth}`);
  assert.ok(eight.ck < eight.plain / 2, `checkpointed ${eight.ck} vs plain ${eight.plain}`);
  // the probe inside the gradient functions sees the recomputed layer's activations, within the true peak
  assert.ok(eight.samples >= 3 * 16 && eight.sampled > 0 && eight.sampled <= eight.ck, `sampled ${eight.sampled} of ${eight.ck}`);
});

test("policyGradients with checkpointed: true (LoRA, reference 'adapters-off', dropout, 2 micro-batches) equals the default pass", () => {
  const model = tinyQwen(7);
  applyLora(model, { r: 4, alpha: 8, dropout: 0.1, seed: 2 });
  randomizeAdapters(model, 9);
  const B = 4, Pp = 7, Rr = 4, L = Pp + Rr;
  const ids = Int32Array.from({ length: B * L }, (_, i) => 30 + ((i * 13) % 70));
  const att = new Int32Array(B * L).fill(1);
  att[L] = 0; att[2 * L] = 0; att[2 * L + 1] = 0; // left padding
  const mask = Float32Array.from({ length: B * Rr }, (_, i) => (i % Rr === Rr - 1 && i > Rr ? 0 : 1));
  const adv = Float32Array.from([0.7, -1.1, 0.4, 0.9]);
  const pack = (start: number, size: number) => ({
    seq: { ids: ids.slice(start * L, (start + size) * L), batch: size, promptLength: Pp, responseLength: Rr, attentionMask: att.slice(start * L, (start + size) * L) },
    mask: mask.slice(start * Rr, (start + size) * Rr), advantages: adv.slice(start, start + size), dispose: () => {},
  });
  const lossCfg = { clipRatio: 0.2, entropyCoef: 1e-3, klCoef: 0.05, klType: 'low_var_kl' as const, temperature: 0.7, microBatch: 2 };
  const seeds = { dropoutSeed: (k: number) => 40 + k };
  const plain = policyGradients(model, 'adapters-off', B, pack, lossCfg, seeds);
  const mem = new MemoryPeak();
  const ck = policyGradients(model, 'adapters-off', B, pack, lossCfg, { ...seeds, checkpointed: true, memory: mem });
  assert.ok(Math.abs(plain.loss - ck.loss) <= 1e-6, `loss ${plain.loss} vs ${ck.loss}`);
  for (const k of Object.keys(plain.metrics) as (keyof typeof plain.metrics)[]) assert.ok(Math.abs((plain.metrics[k] ?? 0) - (ck.metrics[k] ?? 0)) <= 1e-6, k);
  assert.equal([...ck.grads.keys()], [...plain.grads.keys()]);
  let worst = 0;
  for (const [n, g] of plain.grads) worst = Math.max(worst, maxAbsDiff(ck.grads.get(n)!.dataSync(), g.dataSync()));
  assert.ok(worst <= 1e-5, `gradients differ by ${worst}`);
  assert.ok(plain.metrics.klLoss > 0 && mem.samples > 0);
  tf.dispose([...plain.grads.values(), ...ck.grads.values()]);
  model.dispose();
});

test('bad input: a sequence without a prompt, no trainable variable', () => {
  const model = tinyQwen(6);
  const s = batchOf(model, false);
  const vars = [...model.trainableParameters().values()];
  assert.throws(() => checkpointedGrads(model, { ...s, promptLength: 0, responseLength: 9 }, lossOf(s), vars), (e: Error) => e.message === 'checkpointed: a sequence needs at least one prompt token');
  assert.throws(() => checkpointedResponseLogits(model, { ...s, responseLength: 0, promptLength: 9 }), (e: Error) => e.message === 'checkpointed: a sequence needs at least one response token');
  model.setTrainable(false);
  assert.throws(() => checkpointedGrads(model, s, lossOf(s), vars), (e: Error) => e.message === `checkpointed: none of the ${vars.length} variables is trainable`);
  s.dispose();
  model.dispose();
});

test.run();
