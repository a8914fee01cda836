import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byDescendingLogit, generate, pickToken } from '../src/models/qwen2_5_vl/generate.ts';
import { encodePrompt } from '../src/pipeline/policy.ts';
import { batchedRollout, rowSeed, rowStreams, type RolloutPrompt } from '../src/rl/rollout.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const { policy } = tinyPolicy(7);
const model = policy.model;
const G = 3;

/** three prompts of different lengths (the second gets a text prefix), optionally with frozen-tower embeddings */
async function makePrompts(frozen: boolean): Promise<RolloutPrompt[]> {
  const data = worldDataset(3);
  const out: RolloutPrompt[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await data.get(i);
    const e = encodePrompt(policy, s.image, s.query, 'dpad');
    const ids = i === 1 ? [...policy.tokenizer.encode('a longer prompt here'), ...e.ids] : i === 2 ? e.ids.slice(3) : e.ids;
    out.push({ ids, pixels: e.pixelValues, grid: e.grid, embeds: frozen ? tf.tidy(() => model.visual.forward(e.pixelValues, [e.grid])) : null });
  }
  return out;
}

const dispose = (ps: RolloutPrompt[]) => { for (const p of ps) tf.dispose([p.pixels, ...(p.embeds ? [p.embeds] : [])]); };

const opts = (rng: (() => number) | undefined, extra: object = {}) => ({
  samplesPerPrompt: G, maxResponseTokens: 7, temperature: 1, topP: 1, topK: 0, rng, stopTokens: policy.stopTokens, ...extra,
});

/** the trainer's rollout today: one generate per prompt over its G tiled rows */
function perPrompt(prompts: RolloutPrompt[], greedy: boolean) {
  const tokens: number[][] = [];
  const logprobs: number[][] = [];
  for (const pr of prompts) {
    const ids = new Int32Array(G * pr.ids.length);
    for (let g = 0; g < G; g++) ids.set(pr.ids, g * pr.ids.length);
    const embedsG = pr.embeds ? tf.tile(pr.embeds, [G, 1]) as tf.Tensor2D : null;
    const pixelsG = pr.embeds ? null : tf.tile(pr.pixels, [G, 1]) as tf.Tensor2D;
    const gen = generate(model, { ids, batch: G, length: pr.ids.length, imageEmbeds: embedsG, pixelValues: pixelsG, grids: new Array(G).fill(pr.grid), maxNewTokens: 7, greedy, temperature: 1, stopTokens: policy.stopTokens });
    tf.dispose([...(embedsG ? [embedsG] : []), ...(pixelsG ? [pixelsG] : [])]);
    tokens.push(...gen.tokens);
    logprobs.push(...gen.logprobs);
  }
  return { tokens, logprobs };
}

for (const frozen of [false, true]) {
  test(`greedy: the batched rollout gives the per-prompt rollout's tokens and log-probs (${frozen ? 'frozen-tower embeddings' : 'pixel values'})`, async () => {
    const prompts = await makePrompts(frozen);
    assert.ok(new Set(prompts.map(p => p.ids.length)).size === 3, 'prompts of three lengths (left padding is exercised)');
    const ref = perPrompt(prompts, true);
    const before = tf.memory().numTensors;
    const r = await batchedRollout(policy, prompts, opts(seedrandom('a'), { greedy: true }));
    assert.is(tf.memory().numTensors, before, 'no tensors leak');
    assert.is(r.rollouts.length, 3 * G);
    assert.equal(r.rollouts.map(x => x.prompt), [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert.equal(r.rollouts.map(x => x.index), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(r.rollouts.map(x => x.response), ref.tokens);
    assert.is(r.generated, ref.tokens.reduce((a, t) => a + t.length, 0));
    let worst = 0;
    r.logprobs.forEach((row, i) => row.forEach((lp, j) => { worst = Math.max(worst, Math.abs(lp - ref.logprobs[i][j])); }));
    assert.ok(worst <= 1e-5, `log-probs within 1e-5 (worst ${worst})`);
    for (const x of r.rollouts) {
      assert.is(x.promptIds, prompts[x.prompt].ids);
      assert.is(x.text, policy.tokenizer.decode(x.response, true));
      assert.is(x.reward, 0);
      assert.equal(x.components, {});
    }
    dispose(prompts);
  });
}

test('sampled: deterministic given the seed, independent of the batching, one draw of the trainer RNG', async () => {
  const prompts = await makePrompts(true);
  const rng = seedrandom('step', { state: true }) as seedrandom.PRNG & { state(): object };
  const mirror = seedrandom('step');
  const before = tf.memory().numTensors;
  const a = await batchedRollout(policy, prompts, opts(rng));
  mirror();
  assert.is(rng(), mirror(), 'exactly one draw from the trainer RNG');
  const b = await batchedRollout(policy, prompts, opts(seedrandom('step')));
  const c = await batchedRollout(policy, prompts, opts(seedrandom('step'), { maxBatch: 2 }));
  assert.is(tf.memory().numTensors, before, 'no tensors leak');
  assert.equal(b.rollouts.map(x => x.response), a.rollouts.map(x => x.response));
  assert.equal(c.rollouts.map(x => x.response), a.rollouts.map(x => x.response), 'rows do not depend on batch composition');
  // the G samples of a prompt differ (their streams are distinct) and another seed gives another rollout
  const d = await batchedRollout(policy, prompts, opts(seedrandom('other')));
  assert.not.equal(d.rollouts.map(x => x.response), a.rollouts.map(x => x.response));
  assert.not.equal(a.rollouts[0].response, a.rollouts[1].response);
  // row (p, g)'s stream is rowSeed's: a single-prompt batch of prompt 2 reproduces its rows
  const base = Math.floor(seedrandom('step')() * 2 ** 32);
  const ids = new Int32Array(prompts[2].ids);
  const gen = generate(model, { ids, batch: 1, length: ids.length, imageEmbeds: prompts[2].embeds, grids: [prompts[2].grid], maxNewTokens: 7, temperature: 1, rowRngs: [seedrandom(rowSeed(base, 2, 1))], stopTokens: policy.stopTokens });
  assert.equal(gen.tokens[0], a.rollouts[7].response);
  dispose(prompts);
});

test('promptRngs: a prompt\'s rows come from its own RNG, the same alone or in the whole batch', async () => {
  const prompts = await makePrompts(true);
  const prng = (p: number) => seedrandom(`9:rollout:4:${p}`); // as the trainer's rolloutRng(seed, step, p)
  const before = tf.memory().numTensors;
  const all = await batchedRollout(policy, prompts, opts(undefined, { promptRngs: prompts.map((_, p) => prng(p)) }));
  const alone = await batchedRollout(policy, [prompts[2]], opts(undefined, { promptRngs: [prng(2)] }));
  assert.is(tf.memory().numTensors, before);
  assert.equal(alone.rollouts.map(x => x.response), all.rollouts.slice(6).map(x => x.response));
  // row g's stream: the g-th draw of the prompt's RNG
  const streams = rowStreams(prng(1), G);
  const ids = new Int32Array(G * prompts[1].ids.length);
  for (let g = 0; g < G; g++) ids.set(prompts[1].ids, g * prompts[1].ids.length);
  const embedsG = tf.tile(prompts[1].embeds!, [G, 1]) as tf.Tensor2D;
  const gen = generate(model, { ids, batch: G, length: prompts[1].ids.length, imageEmbeds: embedsG, grids: new Array(G).fill(prompts[1].grid), maxNewTokens: 7, temperature: 1, rowRngs: streams, stopTokens: policy.stopTokens });
  embedsG.dispose();
  assert.equal(gen.tokens, all.rollouts.slice(3, 6).map(x => x.response));
  await batchedRollout(policy, prompts, opts(seedrandom('x'), { promptRngs: [prng(0)] })).then(() => assert.unreachable(), e => assert.is((e as Error).message, 'rollout: give exactly one of promptRngs (one RNG per prompt) and rng'));
  await batchedRollout(policy, prompts, opts(undefined, { promptRngs: [prng(0)] })).then(() => assert.unreachable(), e => assert.is((e as Error).message, 'rollout: promptRngs has 1 RNGs for 3 prompts'));
  dispose(prompts);
});

test('the phase backend (backendForPhase) runs the decode and leaks nothing', async () => {
  const prompts = await makePrompts(false);
  const before = tf.memory().numTensors;
  const backend = tf.getBackend();
  const r = await batchedRollout(policy, prompts, opts(seedrandom('p'), { backend: 'phase', greedy: true }));
  assert.is(tf.getBackend(), backend, 'the process backend is restored');
  assert.is(tf.memory().numTensors, before);
  assert.ok(['wasm', backend].includes(r.backend), r.backend);
  assert.equal(r.rollouts.map(x => x.response), perPrompt(prompts, true).tokens);
  dispose(prompts);
});

/** pickToken as it was (a stable comparator sort of logits / t): the reference of the fast ordering */
function pickTokenRef(logits: Float32Array, o: { temperature: number; topK: number; topP: number; rng: () => number }): { token: number; logprob: number } {
  const V = logits.length;
  const scaled = Float64Array.from(logits, l => l / o.temperature);
  const mx = Math.max(...scaled);
  const lse = mx + Math.log(scaled.reduce((a, x) => a + Math.exp(x - mx), 0));
  let cand = Array.from({ length: V }, (_, i) => i).sort((a, b) => scaled[b] - scaled[a]);
  if (o.topK > 0 && o.topK < V) cand = cand.slice(0, o.topK);
  const p = cand.map(i => Math.exp(scaled[i] - lse));
  const mass = p.reduce((a, b) => a + b, 0);
  let keep = cand.length;
  if (o.topP < 1) {
    let acc = 0;
    for (let k = 0; k < cand.length; k++) { acc += p[k] / mass; if (acc >= o.topP) { keep = k + 1; break; } }
  }
  const kept = p.slice(0, keep);
  let u = o.rng() * kept.reduce((a, b) => a + b, 0);
  let token = cand[keep - 1];
  for (let k = 0; k < keep; k++) { u -= kept[k]; if (u < 0) { token = cand[k]; break; } }
  return { token, logprob: scaled[token] - lse };
}

test('pickToken: the native-sort ordering samples exactly as the comparator sort (ties, -0, top-k, top-p, temperatures)', () => {
  const r = seedrandom('logits');
  for (let trial = 0; trial < 60; trial++) {
    const V = 1 + Math.floor(r() * 300);
    // quantized logits: many ties; some -0 and +0; a wide range
    const logits = Float32Array.from({ length: V }, () => (r() < 0.1 ? (r() < 0.5 ? -0 : 0) : Math.round((r() - 0.5) * 16) / 2 * (r() < 0.2 ? 1e3 : 1)));
    const o = { temperature: [1, 0.7, 1.3, 1e-3][trial % 4], topK: trial % 3 === 0 ? 1 + Math.floor(r() * V) : 0, topP: trial % 5 === 0 ? 0.3 + 0.6 * r() : 1 };
    const order = Array.from(byDescendingLogit(logits));
    const ref = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
    assert.equal(order, ref, `order, trial ${trial}`);
    for (let k = 0; k < 5; k++) {
      const a = pickToken(logits, { ...o, greedy: false, rng: seedrandom(`u${trial}:${k}`) });
      const b = pickTokenRef(logits, { ...o, rng: seedrandom(`u${trial}:${k}`) });
      assert.equal(a, b, `trial ${trial}, draw ${k}`);
    }
  }
  assert.throws(() => byDescendingLogit(new Float32Array(2 ** 21)), /pickToken: vocabulary of 2097152 exceeds 2\^21/);
});

test('the decode path: fused q/k/v and the fewer-ops step give the full recomputation\'s tokens; a LoRA-style adapter keeps its own products', async () => {
  const prompts = await makePrompts(true);
  const pr = prompts[1];
  const ids = new Int32Array(pr.ids);
  const run = (o: object) => generate(model, { ids, batch: 1, length: ids.length, imageEmbeds: pr.embeds, grids: [pr.grid], maxNewTokens: 6, greedy: true, ...o });
  const before = tf.memory().numTensors;
  const fused = run({ fuseProjections: true });
  const separate = run({ fuseProjections: false });
  const full = run({ useCache: false });
  assert.is(tf.memory().numTensors, before, 'the fused weights are freed');
  assert.equal(fused.tokens, full.tokens);
  assert.equal(separate.tokens, full.tokens);
  for (const r of [fused, separate]) r.logprobs[0].forEach((lp, j) => assert.ok(Math.abs(lp - full.logprobs[0][j]) < 1e-5, `${lp} vs ${full.logprobs[0][j]}`));
  // an adapter on q_proj: that layer is not fused, and its delta is applied on the decode path
  const attn = model.model.layers[0].self_attn;
  const delta = { delta: (x: tf.Tensor) => tf.mul(tf.matMul(x.reshape([-1, x.shape[x.rank - 1]]) as tf.Tensor2D, tf.ones([x.shape[x.rank - 1], attn.q_proj.outFeatures])), 0.01).reshape([...x.shape.slice(0, -1), attn.q_proj.outFeatures]) };
  attn.q_proj.adapter = delta;
  try {
    const f = model.fuseQkv();
    assert.is(f.qkv[0], null);
    assert.ok(f.qkv[1]);
    f.dispose();
    const a = run({ fuseProjections: true });
    const b = run({ useCache: false });
    assert.equal(a.tokens, b.tokens);
    a.logprobs[0].forEach((lp, j) => assert.ok(Math.abs(lp - b.logprobs[0][j]) < 1e-5));
  } finally {
    attn.q_proj.adapter = null;
  }
  dispose(prompts);
});

test('bad options name the field', async () => {
  await batchedRollout(policy, [], opts(seedrandom('x'), { samplesPerPrompt: 0 })).then(() => assert.unreachable(), e => assert.is((e as Error).message, 'rollout: samplesPerPrompt must be a positive integer, got 0'));
  await batchedRollout(policy, [], opts(seedrandom('x'), { maxBatch: 0 })).then(() => assert.unreachable(), e => assert.is((e as Error).message, 'rollout: maxBatch must be a positive integer, got 0'));
  assert.throws(() => generate(model, { ids: new Int32Array(2), batch: 2, length: 1, maxNewTokens: 1, rowRngs: [Math.random] }), /generate: rowRngs has 1 RNGs for batch 2/);
});

test.run();
