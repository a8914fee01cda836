/**
 * Generation and teacher-forced log-probabilities for the policy.
 * - generate: batched, left-padded prompts; KV cache (or full recomputation); M-RoPE positions
 *   continued from rope_deltas while decoding; greedy or sampling (temperature, top-k, top-p) from
 *   a seeded RNG; stop tokens; per-token log-probs of the chosen tokens under the
 *   temperature-scaled distribution (what the GRPO ratio uses as logp_old).
 * - sequenceLogProbs: differentiable per-token log-probs (and entropies) of given responses.
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { KVCache } from '../../nn/attention.ts';
import type { Qwen2_5_VL } from './model.ts';
import type { GridTHW } from './vision.ts';

export interface GenerateOptions {
  ids: Int32Array;
  batch: number;
  length: number;
  attentionMask?: Int32Array | null;
  pixelValues?: tf.Tensor2D | null;
  grids?: GridTHW[];
  /** precomputed vision output for all rows' image tokens (instead of pixelValues) */
  imageEmbeds?: tf.Tensor2D | null;
  maxNewTokens: number;
  greedy?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** a seed (string or number) or an RNG returning uniforms in [0, 1) */
  seed?: string | number;
  rng?: () => number;
  /**
   * one RNG per row (instead of `rng`): row b draws only from rowRngs[b], so what a row samples
   * does not depend on the other rows of the batch (rollout.ts batches many prompts together)
   */
  rowRngs?: (() => number)[];
  /** tokens that end a row (default: none); the stop token is kept in the output */
  stopTokens?: number[];
  /**
   * HF's RepetitionPenaltyLogitsProcessor (default 1 = off): before picking, every token id
   * present in the row's sequence so far (prompt and its padding included) has its logit l
   * replaced by l < 0 ? l * p : l / p. Log-probs are those of the penalised distribution.
   */
  repetitionPenalty?: number;
  /**
   * ids never picked (default: none; HF's SuppressTokensLogitsProcessor), greedy or sampled. As
   * with top-k and top-p, the log-probs stay those of the whole temperature-scaled distribution,
   * what a teacher-forced pass gives, so they can serve as logp_old. The policy
   * passes its vision placeholders (pipeline/policy.ts): a decoding step has no features for them
   * and a teacher-forced pass would count them against the image's.
   */
  suppressTokens?: number[];
  /** token fed to finished rows (default: the config's pad token) */
  padToken?: number;
  useCache?: boolean;
  /** fuse the q/k/v products of the cached steps (Qwen2_5_VL.fuseQkv; default: on the native backend) */
  fuseProjections?: boolean;
  /** called after every decoding step (for progress and memory checks) */
  onStep?: (step: number) => void;
}

export interface GenerateResult {
  /** generated tokens per row, up to and including the stop token */
  tokens: number[][];
  /** log-prob of each generated token */
  logprobs: number[][];
  /** true where the row ended on a stop token */
  stopped: boolean[];
}

/** log softmax(logits / t)[token], in float64 as pickToken computes it */
export function temperedLogProb(logits: Float32Array, token: number, t: number): number {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i] / t);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] / t - mx);
  return logits[token] / t - (mx + Math.log(z));
}

/** Pick a token from logits [V]: greedy argmax, or a sample after temperature, top-k and top-p. */
export function pickToken(logits: Float32Array, opts: { greedy: boolean; temperature: number; topK: number; topP: number; rng: () => number }): { token: number; logprob: number } {
  const V = logits.length;
  const t = opts.greedy ? 1 : opts.temperature;
  const scaled = new Float64Array(V);
  let mx = -Infinity;
  for (let i = 0; i < V; i++) { scaled[i] = logits[i] / t; if (scaled[i] > mx) mx = scaled[i]; }
  let z = 0;
  for (let i = 0; i < V; i++) z += Math.exp(scaled[i] - mx);
  const lse = mx + Math.log(z);
  let token = 0;
  if (opts.greedy) {
    for (let i = 1; i < V; i++) if (logits[i] > logits[token]) token = i;
  } else {
    // by descending scaled logit (ties: ascending id); for 1e-6 <= t < inf that is the order of the logits
    let cand: Int32Array = t >= 1e-6 && t < Infinity
      ? byDescendingLogit(logits)
      : Int32Array.from(Array.from({ length: V }, (_, i) => i).sort((a, b) => scaled[b] - scaled[a]));
    if (opts.topK > 0 && opts.topK < V) cand = cand.slice(0, opts.topK);
    const p = new Float64Array(cand.length);
    for (let k = 0; k < cand.length; k++) p[k] = Math.exp(scaled[cand[k]] - lse);
    const mass = p.reduce((a, b) => a + b, 0);
    let keep = cand.length;
    if (opts.topP < 1) {
      let acc = 0;
      for (let k = 0; k < cand.length; k++) {
        acc += p[k] / mass;
        if (acc >= opts.topP) { keep = k + 1; break; }
      }
    }
    const kept = p.slice(0, keep);
    const total = kept.reduce((a, b) => a + b, 0);
    let u = opts.rng() * total;
    token = cand[keep - 1];
    for (let k = 0; k < keep; k++) {
      u -= kept[k];
      if (u < 0) { token = cand[k]; break; }
    }
  }
  return { token, logprob: scaled[token] - lse };
}

const ORDER_BITS = new DataView(new ArrayBuffer(4));

/**
 * Token ids by descending logit, ties by ascending id (the order of a stable sort by
 * logit / temperature, temperature > 0): each float32 logit maps to a uint32 that sorts as the float
 * does (+0 and -0 alike), and key = (2^32 - 1 - that) * V + id sorts natively as a Float64Array
 * (exact: below 2^53 for V < 2^21), ~5x faster than a comparator sort at V = 905.
 */
export function byDescendingLogit(logits: Float32Array): Int32Array {
  const V = logits.length;
  if (V >= 2 ** 21) throw new Error(`pickToken: vocabulary of ${V} exceeds 2^21`);
  const keys = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    ORDER_BITS.setFloat32(0, logits[i] + 0); // + 0: -0 becomes +0
    const u = ORDER_BITS.getUint32(0);
    const asc = u & 0x80000000 ? ~u >>> 0 : (u | 0x80000000) >>> 0;
    keys[i] = (0xffffffff - asc) * V + i;
  }
  keys.sort();
  const out = new Int32Array(V);
  for (let k = 0; k < V; k++) out[k] = keys[k] - Math.floor(keys[k] / V) * V;
  return out;
}

/**
 * Apply the repetition penalty in place to one row's logits [V] (float32, as torch computes it),
 * over the distinct ids of `seen`; ids outside [0, V) are an error.
 */
export function applyRepetitionPenalty(logits: Float32Array, seen: ArrayLike<number>, penalty: number): Float32Array {
  if (!(penalty > 0)) throw new Error(`repetition_penalty has to be a strictly positive number, but is ${penalty}`);
  const p = Math.fround(penalty);
  const done = new Set<number>();
  for (let i = 0; i < seen.length; i++) {
    const id = seen[i];
    if (done.has(id)) continue;
    if (id < 0 || id >= logits.length) throw new Error(`repetition_penalty: token id ${id} outside the vocabulary of ${logits.length}`);
    done.add(id);
    const l = logits[id];
    logits[id] = l < 0 ? l * p : l / p;
  }
  return logits;
}

export function generate(model: Qwen2_5_VL, o: GenerateOptions): GenerateResult {
  const c = model.config;
  const { batch, length } = o;
  const greedy = o.greedy ?? false;
  if (o.rowRngs && o.rowRngs.length !== batch) throw new Error(`generate: rowRngs has ${o.rowRngs.length} RNGs for batch ${batch}`);
  const pick = { greedy, temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1, rng: o.rowRngs ? o.rowRngs[0] : o.rng ?? seedrandom(String(o.seed ?? 0)) };
  const picks = Array.from({ length: batch }, (_, b) => (o.rowRngs ? { ...pick, rng: o.rowRngs[b] } : pick));
  const stop = new Set(o.stopTokens ?? []);
  const pad = o.padToken ?? c.pad_token_id;
  const penalty = o.repetitionPenalty ?? 1;
  const suppress = o.suppressTokens ?? [];
  for (const id of suppress) if (!Number.isInteger(id) || id < 0 || id >= c.vocab_size) throw new Error(`generate: suppressTokens holds ${id}, outside the vocabulary of ${c.vocab_size}`);
  if (!(penalty > 0)) throw new Error(`generate: repetitionPenalty has to be a strictly positive number, but is ${penalty}`);
  const mask0 = o.attentionMask ?? new Int32Array(batch * length).fill(1);
  const tokens: number[][] = Array.from({ length: batch }, () => []);
  const logprobs: number[][] = Array.from({ length: batch }, () => []);
  const done = new Array<boolean>(batch).fill(false);
  const stopped = new Array<boolean>(batch).fill(false);
  const useCache = o.useCache ?? true;
  const cache = useCache ? new KVCache(c.num_hidden_layers) : null;
  // the cached steps' fused q/k/v products (per-op bound on the native backend), made once per call
  const fuse = o.fuseProjections ?? tf.getBackend() === 'tensorflow';
  const fused = useCache && fuse && o.maxNewTokens > 1 ? model.fuseQkv() : null;
  try {
    let seqIds = o.ids;
    let seqMask = mask0;
    let seqLen = length;
    let ropeDeltas: Int32Array | null = null;
    let stepIds = o.ids;
    for (let step = 0; step < o.maxNewTokens; step++) {
      let logits: Float32Array;
      if (!useCache || step === 0) {
        const out = model.forward({ ids: seqIds, batch, length: seqLen, attentionMask: seqMask, pixelValues: o.pixelValues, imageEmbeds: o.imageEmbeds, grids: o.grids, cache, positions: 'last' });
        logits = out.logits.dataSync() as Float32Array;
        out.logits.dispose();
        ropeDeltas = out.ropeDeltas;
      } else {
        const past = seqLen - 1;
        const pos = new Int32Array(3 * batch);
        for (let a = 0; a < 3; a++) for (let b = 0; b < batch; b++) pos[a * batch + b] = past + ropeDeltas![b];
        const out = model.forward({ ids: stepIds, batch, length: 1, positionIds: pos, cache, keyMask: seqMask, decodeWeights: fused });
        logits = out.logits.dataSync() as Float32Array;
        out.logits.dispose();
      }
      const V = c.vocab_size;
      const next = new Int32Array(batch);
      for (let b = 0; b < batch; b++) {
        if (done[b]) { next[b] = pad; continue; }
        let row = logits.subarray(b * V, (b + 1) * V);
        if (penalty !== 1) row = applyRepetitionPenalty(row.slice(), seqIds.subarray(b * seqLen, (b + 1) * seqLen), penalty);
        let r: { token: number; logprob: number };
        if (suppress.length) {
          const allowed = row.slice();
          for (const id of suppress) allowed[id] = -Infinity;
          // the pick excludes them; the log-prob stays that of the whole distribution, as with top-k and top-p
          const token = pickToken(allowed, picks[b]).token;
          r = { token, logprob: temperedLogProb(row, token, greedy ? 1 : picks[b].temperature) };
        } else {
          r = pickToken(row, picks[b]);
        }
        next[b] = r.token;
        tokens[b].push(r.token);
        logprobs[b].push(r.logprob);
        if (stop.has(r.token)) { done[b] = true; stopped[b] = true; }
      }
      // append the new column to the running sequence
      const ids2 = new Int32Array(batch * (seqLen + 1));
      const mask2 = new Int32Array(batch * (seqLen + 1));
      for (let b = 0; b < batch; b++) {
        ids2.set(seqIds.subarray(b * seqLen, (b + 1) * seqLen), b * (seqLen + 1));
        mask2.set(seqMask.subarray(b * seqLen, (b + 1) * seqLen), b * (seqLen + 1));
        ids2[b * (seqLen + 1) + seqLen] = next[b];
        mask2[b * (seqLen + 1) + seqLen] = 1;
      }
      seqIds = ids2;
      seqMask = mask2;
      seqLen += 1;
      stepIds = next;
      o.onStep?.(step);
      if (done.every(Boolean)) break;
    }
  } finally {
    cache?.dispose();
    fused?.dispose();
  }
  return { tokens, logprobs, stopped };
}

export interface SequenceBatch {
  /** [B, P + R]: left-padded prompts followed by right-padded responses */
  ids: Int32Array;
  batch: number;
  promptLength: number;
  responseLength: number;
  /** [B, P + R] attention mask (0 on both paddings) */
  attentionMask: Int32Array;
  pixelValues?: tf.Tensor2D | null;
  grids?: GridTHW[];
  /** precomputed vision output for all rows' image tokens (instead of pixelValues) */
  imageEmbeds?: tf.Tensor2D | null;
}

/**
 * Teacher-forced log-probs [B, R] of the response tokens (and entropies [B, R]) under
 * softmax(logits / temperature); differentiable w.r.t. the model's trainable parameters.
 */
export function sequenceLogProbs(model: Qwen2_5_VL, s: SequenceBatch, opts: { temperature?: number; entropy?: boolean } = {}): { logProbs: tf.Tensor2D; entropy: tf.Tensor2D | null } {
  const { batch, promptLength: P, responseLength: R } = s;
  const L = P + R;
  const V = model.config.vocab_size;
  const t = opts.temperature ?? 1;
  let entropy: tf.Tensor2D | null = null;
  const logProbs = tf.tidy(() => {
    const out = model.forward({ ids: s.ids, batch, length: L, attentionMask: s.attentionMask, pixelValues: s.pixelValues, grids: s.grids, imageEmbeds: s.imageEmbeds });
    // logits at P-1 .. L-2 predict the response tokens at P .. L-1
    const lg = tf.div(out.logits.slice([0, P - 1, 0], [batch, R, V]), t) as tf.Tensor3D;
    const lse = tf.logSumExp(lg, -1); // [B, R]
    const target = new Int32Array(batch * R);
    for (let b = 0; b < batch; b++) for (let r = 0; r < R; r++) target[b * R + r] = s.ids[b * L + P + r];
    const picked = tf.sum(tf.mul(lg, tf.oneHot(tf.tensor2d(target, [batch, R], 'int32'), V)), -1);
    if (opts.entropy) {
      entropy = tf.keep(tf.sub(lse, tf.sum(tf.mul(tf.softmax(lg, -1), lg), -1)) as tf.Tensor2D);
    }
    return tf.sub(picked, lse) as tf.Tensor2D;
  });
  return { logProbs, entropy };
}
