/**
 * The batched rollout of a GRPO step: every prompt x G sample of the step decoded as ONE left-padded
 * batch (generate.ts), instead of one generate per prompt. Each row samples from its own RNG stream,
 * derived from one draw of the trainer's RNG, so a row's tokens do not depend on which rows share
 * its batch (or on maxBatch). The decode runs on the active backend, or optionally on the one the
 * crossover table picks (backend.ts backendForPhase) or a named one.
 *
 * It returns what GrpoTrainer.rollout returns (rollouts in prompt-major order, the generated token
 * count), plus each row's log-probs under softmax(logits / temperature) and its stop flag.
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { backendForPhase, onBackend } from '../backend.ts';
import { generate } from '../models/qwen2_5_vl/generate.ts';
import type { GridTHW } from '../models/qwen2_5_vl/vision.ts';
import type { Policy } from '../pipeline/policy.ts';
import type { Rollout } from './trainer.ts';

/** One prompt of the step, encoded (trainer.ts StepPrompt has these fields). */
export interface RolloutPrompt {
  ids: number[];
  /** [N, C*T*P*P] the processor's pixel values */
  pixels: tf.Tensor2D;
  grid: GridTHW;
  /** the frozen vision tower's output [n, D] for this prompt's image tokens, or null */
  embeds: tf.Tensor2D | null;
}

export interface RolloutOptions {
  /** G: samples per prompt */
  samplesPerPrompt: number;
  maxResponseTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  /**
   * one RNG per prompt (the trainer's rolloutRng(seed, step, p)): row g of prompt p samples from a
   * stream seeded by the g-th draw of prompt p's RNG (rowStreams), so a prompt's rows are the same
   * whichever prompts share the batch (a distributed worker decoding one prompt draws the same)
   */
  promptRngs?: (() => number)[];
  /** or one RNG for the call: one draw seeds every row's stream (rowSeed) */
  rng?: () => number;
  stopTokens: number[];
  /** ids never sampled (generate's suppressTokens; the policy's suppressTokens) */
  suppressTokens?: number[];
  greedy?: boolean;
  /**
   * 'current' (default): the active backend; 'phase': the one backendForPhase picks for a decode of
   * this size (wasm for a decoder under 4M parameters in a native process); or a backend name. On
   * the world step (demo policy, 16 rows, ~200-token prompts) the native backend decodes the batch
   * ~2x faster than wasm does (BENCHMARKS.md), against what the crossover table predicts.
   */
  backend?: string;
  /** rows decoded together at most (default: all prompts x G in one batch) */
  maxBatch?: number;
}

export interface BatchedRollout {
  rollouts: Rollout[];
  generated: number;
  /** per rollout (same order): log-probs of its tokens under softmax(logits / temperature) */
  logprobs: number[][];
  /** per rollout: ended on a stop token */
  stopped: boolean[];
  /** the backend the decode ran on */
  backend: string;
}

/** The seed string of row (prompt p, sample g) for a call whose one draw from `rng` was `base`. */
export function rowSeed(base: number, p: number, g: number): string {
  return `rollout:${base}:${p}:${g}`;
}

/** The G row streams of one prompt from its RNG: row g is seeded by the RNG's g-th draw. */
export function rowStreams(promptRng: () => number, G: number): (() => number)[] {
  return Array.from({ length: G }, () => seedrandom(`rollout-row:${Math.floor(promptRng() * 2 ** 32)}`));
}

/**
 * G responses per prompt, all rows in one batched decode (or batches of maxBatch rows). The
 * prompts' tensors stay the caller's; nothing else outlives the call.
 */
export async function batchedRollout(policy: Policy, prompts: RolloutPrompt[], o: RolloutOptions): Promise<BatchedRollout> {
  const G = o.samplesPerPrompt;
  if (!Number.isInteger(G) || G < 1) throw new Error(`rollout: samplesPerPrompt must be a positive integer, got ${G}`);
  const maxBatch = o.maxBatch ?? Math.max(1, prompts.length * G);
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`rollout: maxBatch must be a positive integer, got ${maxBatch}`);
  const model = policy.model;
  if ((o.promptRngs ? 1 : 0) + (o.rng ? 1 : 0) !== 1) throw new Error('rollout: give exactly one of promptRngs (one RNG per prompt) and rng');
  if (o.promptRngs && o.promptRngs.length !== prompts.length) throw new Error(`rollout: promptRngs has ${o.promptRngs.length} RNGs for ${prompts.length} prompts`);
  // whatever the batching, each row's stream is fixed up front (rng: one draw per call)
  const base = o.rng ? Math.floor(o.rng() * 2 ** 32) : 0;
  const rows: { p: number; g: number; rng: () => number }[] = [];
  for (let p = 0; p < prompts.length; p++) {
    const streams = o.promptRngs ? rowStreams(o.promptRngs[p], G) : null;
    for (let g = 0; g < G; g++) rows.push({ p, g, rng: streams ? streams[g] : seedrandom(rowSeed(base, p, g)) });
  }
  const n = rows.length;
  const target = o.backend === 'phase'
    ? backendForPhase({ parameters: model.parameterCount(), phase: 'decode', batch: Math.min(maxBatch, n) })
    : o.backend === undefined || o.backend === 'current' ? tf.getBackend() : o.backend;
  const tokens: number[][] = new Array(n);
  const logprobs: number[][] = new Array(n);
  const stopped: boolean[] = new Array(n);
  await onBackend(target, () => {
    // each prompt's image embeddings once (the per-prompt path ran the tower on G tiled copies)
    const embeds = prompts.map(pr => pr.embeds ?? tf.tidy(() => model.visual.forward(pr.pixels, [pr.grid])));
    try {
      for (let s = 0; s < n; s += maxBatch) decodeRows(s, Math.min(n, s + maxBatch), embeds);
    } finally {
      prompts.forEach((pr, i) => { if (!pr.embeds) embeds[i].dispose(); });
    }
  });
  const rollouts: Rollout[] = [];
  let generated = 0;
  rows.forEach(({ p }, i) => {
    generated += tokens[i].length;
    rollouts.push({ index: i, prompt: p, promptIds: prompts[p].ids, response: tokens[i], text: policy.tokenizer.decode(tokens[i], true), reward: 0, components: {} });
  });
  return { rollouts, generated, logprobs, stopped, backend: target };

  /** rows [s, e) as one left-padded batch */
  function decodeRows(s: number, e: number, embeds: tf.Tensor2D[]): void {
    const part = rows.slice(s, e);
    const B = part.length;
    const L = Math.max(...part.map(r => prompts[r.p].ids.length));
    const pad = model.config.pad_token_id;
    const ids = new Int32Array(B * L).fill(pad);
    const mask = new Int32Array(B * L);
    part.forEach((r, b) => {
      const pid = prompts[r.p].ids;
      ids.set(pid, b * L + L - pid.length);
      mask.fill(1, b * L + L - pid.length, (b + 1) * L);
    });
    // image tokens are consumed in row order: each row's prompt embeddings, in turn
    const imageEmbeds = tf.concat(part.map(r => embeds[r.p]), 0) as tf.Tensor2D;
    try {
      const gen = generate(model, {
        ids, batch: B, length: L, attentionMask: mask, imageEmbeds, grids: part.map(r => prompts[r.p].grid),
        maxNewTokens: o.maxResponseTokens, greedy: o.greedy ?? false, temperature: o.temperature, topP: o.topP, topK: o.topK,
        rowRngs: part.map(r => r.rng), stopTokens: o.stopTokens, suppressTokens: o.suppressTokens,
      });
      for (let b = 0; b < B; b++) {
        tokens[s + b] = gen.tokens[b];
        logprobs[s + b] = gen.logprobs[b];
        stopped[s + b] = gen.stopped[b];
      }
    } finally {
      imageEmbeds.dispose();
    }
  }
}
