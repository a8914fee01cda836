import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyRepetitionPenalty, generate, sequenceLogProbs } from '../src/models/qwen2_5_vl/generate.ts';
import { parseGenerationConfig } from '../src/models/qwen2_5_vl/generation-config.ts';
import type { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { loadQwen } from '../src/models/qwen2_5_vl/weights.ts';
import { loadPolicy } from '../src/pipeline/policy.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { FIXTURES } from './helpers/setup.ts';

const B = path.join(FIXTURES, 'qwen2_5_vl-tiny-b'); // tie_word_embeddings: true
const DEMO = new URL('../weights/demo/policy/', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-qwen-gen-'));

test('generation_config.json: eos id or list, repetition penalty, bad values named', () => {
  assert.equal(parseGenerationConfig({ eos_token_id: [151645, 151643, 151645], repetition_penalty: 1.05 }), { eosTokenIds: [151645, 151643], repetitionPenalty: 1.05, raw: { eos_token_id: [151645, 151643, 151645], repetition_penalty: 1.05 } });
  const one = parseGenerationConfig({ eos_token_id: 151645 });
  assert.equal([one.eosTokenIds, one.repetitionPenalty], [[151645], 1]);
  assert.equal(parseGenerationConfig({}).eosTokenIds, []);
  assert.throws(() => parseGenerationConfig({ eos_token_id: 'x' }, 'g.json'), /^g\.json: eos_token_id must be a token id or a list of token ids, got "x"$/);
  assert.throws(() => parseGenerationConfig({ repetition_penalty: 0 }, 'g.json'), /^g\.json: repetition_penalty must be a strictly positive number, got 0$/);
});

test('loadPolicy reads stop tokens and repetition penalty from generation_config.json when present', () => {
  const plain = loadPolicy(DEMO);
  assert.equal(plain.stopTokens, [899], '<|im_end|> and config eos (the same id) without a generation config');
  assert.is(plain.repetitionPenalty, 1);
  plain.model.dispose();
  const dir = path.join(tmp, 'policy');
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(DEMO)) fs.symlinkSync(path.join(DEMO, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [899, 897], repetition_penalty: 1.05, do_sample: true }));
  const p = loadPolicy(dir);
  assert.equal(p.stopTokens, [899, 897]);
  assert.is(p.repetitionPenalty, 1.05);
  p.model.dispose();
  const q = loadPolicy(dir, { repetitionPenalty: 1, stopTokens: [899] });
  assert.equal([q.stopTokens, q.repetitionPenalty], [[899], 1], 'options override the file');
  q.model.dispose();
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [5000] }));
  assert.throws(() => loadPolicy(dir), /^policy: stop token 5000 outside the vocabulary of 905$/);
});

test('repetition penalty: score < 0 ? score * p : score / p on each distinct seen id, float32', () => {
  const l = Float32Array.from([2, -2, 0.5, 3, -1]);
  applyRepetitionPenalty(l, [0, 1, 1, 4, 0], 2);
  assert.equal(Array.from(l), [1, -4, 0.5, 3, -2]);
  const m = Float32Array.from([1]);
  applyRepetitionPenalty(m, [0], 1.05);
  assert.is(m[0], Math.fround(1 / Math.fround(1.05)));
  assert.throws(() => applyRepetitionPenalty(l, [9], 2), /^repetition_penalty: token id 9 outside the vocabulary of 5$/);
  assert.throws(() => applyRepetitionPenalty(l, [0], 0), /^repetition_penalty has to be a strictly positive number, but is 0$/);
});

/** greedy decoding by full recomputation with the penalty written out over the whole row (prompt and padding included) */
function referenceGreedy(m: Qwen2_5_VL, rows: number[][], mask: number[][], steps: number, p: number): number[][] {
  const seqs = rows.map(r => [...r]);
  const masks = mask.map(r => [...r]);
  const out: number[][] = rows.map(() => []);
  const V = m.config.vocab_size;
  for (let s = 0; s < steps; s++) {
    const L = seqs[0].length;
    const o = m.forward({ ids: Int32Array.from(seqs.flat()), batch: seqs.length, length: L, attentionMask: Int32Array.from(masks.flat()), positions: 'last' });
    const lg = o.logits.dataSync() as Float32Array;
    o.logits.dispose();
    seqs.forEach((seq, b) => {
      const row = Float32Array.from(lg.subarray(b * V, (b + 1) * V));
      for (const id of new Set(seq)) row[id] = row[id] < 0 ? Math.fround(row[id] * Math.fround(p)) : Math.fround(row[id] / Math.fround(p));
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
      out[b].push(best);
      seq.push(best);
      masks[b].push(1);
    });
  }
  return out;
}

test('generate applies the repetition penalty as HF does, with and without the KV cache', () => {
  const m = loadQwen(B);
  const pad = 1; // the tiny vocabulary lacks the config's pad id; padding is also fed to finished rows
  const rows = [[pad, pad, 5, 9, 5, 11], [3, 4, 5, 6, 7, 8]];
  const mask = [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]];
  const base = { ids: Int32Array.from(rows.flat()), batch: 2, length: 6, attentionMask: Int32Array.from(mask.flat()), maxNewTokens: 8, greedy: true, padToken: pad };
  const plain = generate(m, base).tokens;
  for (const p of [1.3, 50]) {
    const want = referenceGreedy(m, rows, mask, 8, p);
    assert.equal(generate(m, { ...base, repetitionPenalty: p }).tokens, want, `penalty ${p}, cached`);
    assert.equal(generate(m, { ...base, repetitionPenalty: p, useCache: false }).tokens, want, `penalty ${p}, recomputed`);
  }
  assert.not.equal(generate(m, { ...base, repetitionPenalty: 50 }).tokens, plain, 'a strong penalty changes the greedy output');
  assert.equal(referenceGreedy(m, rows, mask, 8, 1), plain);
  assert.throws(() => generate(m, { ...base, repetitionPenalty: -1 }), /^generate: repetitionPenalty has to be a strictly positive number, but is -1$/);
  m.dispose();
});

test('suppressTokens: the suppressed ids are never picked, greedy or sampled, and log-probs stay those of the whole distribution; a bad id is named', () => {
  const m = loadQwen(B);
  const pad = 1;
  const base = { ids: Int32Array.from([3, 4, 5, 6, 7, 8]), batch: 1, length: 6, maxNewTokens: 6, greedy: true, padToken: pad };
  const plain = generate(m, base).tokens[0];
  // suppress every token greedy picked: none of them comes back, and the first pick is the runner-up
  const banned = [...new Set(plain)];
  const g = generate(m, { ...base, suppressTokens: banned });
  assert.ok(g.tokens[0].every(t => !banned.includes(t)), JSON.stringify({ plain, got: g.tokens[0] }));
  const all = lastLogits(m, base.ids);
  const V = m.config.vocab_size;
  const first = all.subarray(all.length - V);
  let runnerUp = -1;
  for (let i = 0; i < first.length; i++) if (!banned.includes(i) && (runnerUp < 0 || first[i] > first[runnerUp])) runnerUp = i;
  assert.is(g.tokens[0][0], runnerUp);
  // the first log-prob is log softmax over the whole vocabulary (what a teacher-forced pass gives)
  const mx = Math.max(...first);
  const z = first.reduce((a, v) => a + Math.exp(v - mx), 0);
  assert.ok(Math.abs(g.logprobs[0][0] - (first[runnerUp] - mx - Math.log(z))) < 1e-4, `${g.logprobs[0][0]}`);
  const sampled = generate(m, { ...base, greedy: false, temperature: 5, seed: 3, maxNewTokens: 24, suppressTokens: [plain[0]] });
  assert.ok(!sampled.tokens[0].includes(plain[0]), 'never sampled either');
  assert.throws(() => generate(m, { ...base, suppressTokens: [-2] }), (e: Error) => e.message === `generate: suppressTokens holds -2, outside the vocabulary of ${m.config.vocab_size}`);
  m.dispose();
});

test('the policy suppresses its vision placeholders: a response never holds <|image_pad|> or <|video_pad|>', () => {
  const policy = loadPolicy(DEMO);
  const c = policy.model.config;
  assert.equal(policy.suppressTokens, [c.image_token_id, c.video_token_id].filter(id => id < c.vocab_size));
  assert.ok(policy.suppressTokens.includes(c.image_token_id));
  policy.model.dispose();
});

function lastLogits(m: Qwen2_5_VL, ids: Int32Array): Float32Array {
  const o = m.forward({ ids, batch: 1, length: ids.length });
  const v = Float32Array.from(o.logits.dataSync() as Float32Array);
  o.logits.dispose();
  return v;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

test('tied LM head: the held transposed copy gives the same logits, follows optimizer steps and loads, and keeps the gradient', () => {
  const m = loadQwen(B);
  const ids = Int32Array.from([3, 4, 5, 6, 7]);
  const R = 3;
  const s = { ids, batch: 1, promptLength: ids.length - R, responseLength: R, attentionMask: new Int32Array(ids.length).fill(1) };
  const exact = () => {
    m.cacheTiedHead = false;
    const v = lastLogits(m, ids);
    m.cacheTiedHead = true;
    return v;
  };
  assert.is(maxDiff(lastLogits(m, ids), exact()), 0, 'cached head = transposing matmul, bit for bit');
  const emb = m.model.embed_tokens.weight;
  const grad = (cache: boolean) => {
    m.cacheTiedHead = cache;
    const { grads } = tf.variableGrads(() => tf.sum(sequenceLogProbs(m, s).logProbs) as tf.Scalar, [emb]);
    m.cacheTiedHead = true;
    const g = Float32Array.from(grads[emb.name].dataSync() as Float32Array);
    tf.dispose(Object.values(grads));
    return g;
  };
  const D = m.config.hidden_size;
  const g = grad(true);
  // a token that is not in the input gets its embedding's gradient only through the head
  const unseen = 40;
  assert.ok(g.subarray(unseen * D, (unseen + 1) * D).some(x => x !== 0), 'the head passes its gradient to the tied weight');
  assert.is(maxDiff(g, grad(false)), 0, 'the gradient does not depend on the held copy');
  // an optimizer step updates the weight in place (Variable.assign): the next inference sees it
  const before = lastLogits(m, ids);
  const opt = new AdamW({ lr: 1e-2, weightDecay: 0 });
  const gt = tf.tensor2d(g, emb.shape as [number, number]);
  opt.apply(new Map([['embed', emb]]), new Map([['embed', gt]]));
  gt.dispose();
  const after = lastLogits(m, ids);
  assert.ok(maxDiff(before, after) > 1e-3, 'the logits moved with the weight');
  assert.is(maxDiff(after, exact()), 0, 'no stale copy after an optimizer step');
  // reloading the checkpoint's weights (Module.load assigns) is seen too
  const fresh = loadQwen(B);
  emb.assign(fresh.model.embed_tokens.weight);
  fresh.dispose();
  assert.ok(maxDiff(lastLogits(m, ids), before) < 1e-5, 'back to the loaded weights');
  opt.dispose();
  const n = tf.memory().numTensors;
  m.releaseTiedHead();
  assert.is(tf.memory().numTensors, n - 1, 'the held copy is one tensor, released on request');
  m.dispose();
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
