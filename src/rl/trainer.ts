/**
 * The single-process GRPO trainer: rollouts sampled from the policy (G per prompt), rewards from
 * the reward registry (rewards/registry.ts; scoreGroup hands the scorer to the rewards that need
 * CLIP), group advantages, the
 * clipped loss with the KL to a frozen reference and the entropy bonus, gradient accumulation over
 * micro-batches, global-norm clipping and AdamW. Checkpoints restore the run exactly; every step is
 * logged as JSONL; NaN/Inf in the loss or gradients skips the update.
 *
 * LoRA GRPO (config.lora): the trainer attaches the adapters to the policy (models/qwen2_5_vl/lora.ts,
 * unless the policy already has matching ones), so the base is frozen and the gradients and AdamW
 * moments exist for the adapters only. The reference is the same model with the adapters switched
 * off (no second copy: pass reference null); rollouts run through the unmerged adapters; the
 * adapters' dropout is on only in the gradient pass, seeded by the step and micro-batch so a
 * resumed run is exact; checkpoints hold the adapter (PEFT format), not the base.
 *
 * Sampling: prompt p of step s (0-based) draws its G responses from its own RNG,
 * rolloutRng(seed, s, p), not from one stream shared by the step's prompts; so what a prompt samples
 * does not depend on which process generates it or in what order (the distributed workers,
 * src/dist/worker.ts, use the same derivation and give the same rollouts). The data order is
 * epochOrder(seed, size, epoch). The distributed learner (src/dist/learner.ts) sets `rolloutSource`:
 * the step's scored rollouts then come from the workers; every other phase is this class's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import type { ImageU8 } from '../io/resample.ts';
import { generate } from '../models/qwen2_5_vl/generate.ts';
import { loraAdapters } from '../models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import { encodePrompt, type Policy } from '../pipeline/policy.ts';
import type { TrainDataset, TrainSample } from '../data/types.ts';
import { AdamW } from '../optim/adamw.ts';
import { applyGradients, type StepResult } from '../optim/step.ts';
import type { CaptionScorer } from '../rewards/discriminative.ts';
import { componentsOf, needsClip, REWARDS, type RewardFn } from '../rewards/registry.ts';
import { scoreGroup } from '../rewards/score.ts';
import { Progress } from '../util/progress.ts';
import { writeTrainingCurves } from './curves.ts';
import { groupAdvantages } from './advantages.ts';
import { clearCheckpoints, latestCheckpoint, loadCheckpoint, readCheckpointState, removeStaleTemps, saveCheckpoint, type TrainerState } from './checkpoint.ts';
import { configDifferences, defaultStepCount, trainConfig, type TrainConfig } from './config.ts';
import { attachLora, loraDropoutSeed } from './lora.ts';
import { readStepLog, trimStepLog } from './runlog.ts';
import { shown } from '../util/schema.ts';
import { policyGradients, type PolicyGradients } from './update.ts';
import { batchedRollout } from './rollout.ts';

export type { TrainDataset, TrainSample } from '../data/types.ts';

export interface StepLog {
  step: number;
  epoch: number;
  /** components: the mean of each reward function the variant uses, by name */
  reward: { mean: number; std: number; components: Record<string, number> };
  advantage: { mean: number; std: number; min: number; max: number };
  loss: { total: number; pg: number; kl: number; entropy: number | null; clipFrac: number; ppoKl: number };
  gradNorm: number;
  skipped: string | null;
  responseLength: { mean: number; max: number };
  tokensPerSecond: number;
  seconds: { rollout: number; reward: number; forwardBackward: number; optimizer: number; total: number };
  memory: { numTensors: number; numBytes: number };
  /** distributed runs only (src/dist/learner.ts): queue depth, staleness, drops, rollouts/s per worker */
  distributed?: Record<string, unknown>;
}

/**
 * The RNG prompt p (0-based within the step) of step `step` (0-based, the updates done before it)
 * samples its G responses from: a function of the seed and that position only.
 */
export function rolloutRng(seed: number, step: number, prompt: number): () => number {
  return seedrandom(`${seed}:rollout:${step}:${prompt}`);
}

/** The data order of `epoch`: a seeded Fisher-Yates shuffle of 0 .. size-1. */
export function epochOrder(seed: number, size: number, epoch: number): number[] {
  const r = seedrandom(`${seed}:epoch:${epoch}`);
  const order = Array.from({ length: size }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * The scored rollouts of a step from elsewhere (the distributed learner's workers), instead of
 * rollout() + score(): `step` is the 0-based step, `prompts` its encoded prompts.
 */
export type RolloutSource = (prompts: StepPrompt[], step: number) => Promise<{ rollouts: Rollout[]; generated: number; distributed?: Record<string, unknown> }>;

/** One prompt of a step, encoded: its ids, pixels, grid, the view the policy saw and (frozen vision) its image embeddings. */
export interface StepPrompt {
  sample: TrainSample;
  /** the sample's index in the dataset */
  index: number;
  ids: number[];
  pixels: tf.Tensor2D;
  grid: [number, number, number];
  view: ImageU8;
  embeds: tf.Tensor2D | null;
}

export interface Rollout {
  /** position in the step's rollouts (advantages are indexed by it) */
  index: number;
  prompt: number;
  promptIds: number[];
  response: number[];
  text: string;
  reward: number;
  components: Record<string, number>;
}

function meanStd(xs: number[]): { mean: number; std: number } {
  if (!xs.length) return { mean: 0, std: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) };
}

/**
 * One prompt encoded for a step (the chat prompt, pixels, grid; with freezeVision its image
 * embeddings, run once); the caller disposes pixels and embeds. Used by the trainer and the workers.
 */
export function encodeStepPrompt(policy: Policy, c: TrainConfig, sample: TrainSample, index: number): StepPrompt {
  const enc = encodePrompt(policy, sample.image, sample.query, c.rewards.variant);
  if (enc.ids.length > c.maxPromptTokens) {
    enc.pixelValues.dispose();
    throw new Error(`trainer: prompt of ${enc.ids.length} tokens exceeds maxPromptTokens ${c.maxPromptTokens} (query ${JSON.stringify(sample.query)})`);
  }
  const embeds = c.freezeVision ? tf.tidy(() => policy.model.visual.forward(enc.pixelValues, [enc.grid])) : null;
  return { sample, index, ids: enc.ids, pixels: enc.pixelValues, grid: enc.grid, view: enc.view, embeds };
}

/** G = samplesPerPrompt responses to one prompt, sampled with the config's settings from `rng` (tokens and their log-probs at generation). */
export function sampleGroup(policy: Policy, c: TrainConfig, pr: StepPrompt, rng: () => number): { tokens: number[][]; logprobs: number[][] } {
  const G = c.samplesPerPrompt;
  const ids = new Int32Array(G * pr.ids.length);
  for (let g = 0; g < G; g++) ids.set(pr.ids, g * pr.ids.length);
  const embedsG = pr.embeds ? tf.tile(pr.embeds, [G, 1]) as tf.Tensor2D : null;
  const pixelsG = pr.embeds ? null : tf.tile(pr.pixels, [G, 1]) as tf.Tensor2D;
  try {
    const gen = generate(policy.model, {
      ids, batch: G, length: pr.ids.length, imageEmbeds: embedsG, pixelValues: pixelsG, grids: new Array(G).fill(pr.grid),
      maxNewTokens: c.maxResponseTokens, temperature: c.temperature, topP: c.topP, topK: c.topK, rng, stopTokens: policy.stopTokens, suppressTokens: policy.suppressTokens,
    });
    return { tokens: gen.tokens, logprobs: gen.logprobs };
  } finally {
    embedsG?.dispose();
    pixelsG?.dispose();
  }
}

export class GrpoTrainer {
  readonly config: TrainConfig;
  readonly policy: Policy;
  readonly reference: Qwen2_5_VL | null;
  /** handed to the reward registry for the rewards that need CLIP scores (RewardFn.needs) */
  readonly scorer: CaptionScorer | null;
  /** the reward functions (default: rewards/registry.ts REWARDS) */
  readonly rewards: readonly RewardFn[];
  readonly data: TrainDataset;
  readonly optimizer: AdamW;
  step = 0;
  private epoch = 0;
  private cursor = 0;
  private order: number[] = [];
  /** kept in the checkpoint state for its format; sampling draws from rolloutRng(seed, step, prompt) instead */
  private rng: seedrandom.PRNG & { state(): object };
  readonly logs: StepLog[] = [];
  /** called after each step (tests use it to stop a run) */
  onStep?: (log: StepLog) => void;
  /** set by the distributed learner: the step's scored rollouts come from it (see RolloutSource) */
  rolloutSource?: RolloutSource;

  constructor(opts: { config: TrainConfig; policy: Policy; reference: Qwen2_5_VL | null; scorer: CaptionScorer | null; data: TrainDataset; rewards?: readonly RewardFn[] }) {
    // checked here too: a config built in code (not through trainConfig) gets the same checks
    this.config = trainConfig(opts.config, 'trainer config');
    this.policy = opts.policy;
    this.reference = opts.reference;
    this.scorer = opts.scorer;
    this.data = opts.data;
    this.rewards = opts.rewards ?? REWARDS;
    if (needsClip(this.config.rewards.variant, this.rewards) && !this.scorer) throw new Error('trainer: the dpad reward needs a CLIP scorer (or use rewards.variant = "baseline")');
    if (this.config.lora) {
      if (this.reference) throw new Error("trainer: with 'lora' the reference is the policy with its adapters off; pass reference null (a reference copy would cost a second model)");
      attachLora(this.policy.model, this.config.lora, this.config.seed);
    } else if (loraAdapters(this.policy.model).size) {
      throw new Error("trainer: the policy has LoRA adapters but the config has no 'lora' section (full fine-tuning would train the adapters only)");
    }
    if (this.config.klCoef > 0 && !this.reference && !this.config.lora) throw new Error('trainer: klCoef > 0 needs a frozen reference policy');
    if (this.data.size < 1) throw new Error('trainer: the dataset is empty');
    this.optimizer = new AdamW({ lr: this.config.lr, weightDecay: this.config.weightDecay, betas: this.config.betas, eps: this.config.eps });
    this.rng = seedrandom(String(this.config.seed), { state: true }) as seedrandom.PRNG & { state(): object };
    this.reference?.setTrainable(false);
    if (this.config.freezeVision) this.policy.model.setTrainable(false, n => n.startsWith('visual.'));
    this.shuffle();
  }

  /** total updates: configured, or what `stepCount` gives for one pass (the released run: len(dataloader) - 1) */
  get totalSteps(): number {
    return this.config.steps ?? defaultStepCount(this.data.size, this.config.promptsPerStep, this.config.stepCount);
  }

  private shuffle(): void {
    this.order = epochOrder(this.config.seed, this.data.size, this.epoch);
  }

  private nextIndex(): number {
    if (this.cursor >= this.order.length) {
      this.epoch++;
      this.cursor = 0;
      this.shuffle();
    }
    return this.order[this.cursor++];
  }

  state(): TrainerState {
    return { step: this.step, cursor: this.cursor, epoch: this.epoch, rng: this.rng.state(), config: this.config };
  }

  /**
   * Resume from the newest checkpoint in outDir/checkpoints, if any; returns whether it did. A
   * checkpoint whose saved config differs from this run's in a field that changes the run
   * (config.ts RESUME_NEUTRAL_FIELDS lists those that may differ) is refused, naming the field.
   */
  resume(): boolean {
    const ck = this.resumableCheckpoint();
    if (!ck) return false;
    const s = loadCheckpoint(ck, this.policy.model, this.optimizer, this.config.lora ? 'adapter' : 'full');
    this.step = s.step;
    this.epoch = s.epoch;
    this.shuffle();
    this.cursor = s.cursor;
    this.rng = seedrandom('', { state: s.rng as seedrandom.State.Arc4 }) as seedrandom.PRNG & { state(): object };
    return true;
  }

  /**
   * The checkpoint `resume()` would load (null: none), after checking that its saved config matches
   * this run's; it reads no tensors, so a CLI can check before it writes anything.
   */
  resumableCheckpoint(): string | null {
    const ck = latestCheckpoint(path.join(this.config.outDir, 'checkpoints'));
    if (!ck) return null;
    const saved = readCheckpointState(ck).config;
    const diff = saved === undefined ? [] : configDifferences(saved, this.config);
    if (diff.length) {
      const [d, ...more] = diff;
      const also = more.length ? `; also differ: ${more.map(m => `'${m.field}'`).join(', ')}` : '';
      throw new Error(`${ck}: the checkpoint was made with ${d.field} ${shown(d.saved)}, this run has ${shown(d.current)} (field '${d.field}'${also}); use --fresh or the same config`);
    }
    return ck;
  }

  checkpoint(): string {
    return saveCheckpoint(path.join(this.config.outDir, 'checkpoints'), this.step, this.policy.model, this.optimizer, this.state(), this.config.lora ? 'adapter' : 'full');
  }

  /**
   * One GRPO step, in TRL's named phases: prompts, rollout (G samples per prompt), score (the
   * reward registry, rewards/score.ts), advantages (per-group), gradients (micro-batched actor
   * loss), update (clip + AdamW, optim/step.ts) and the step's log.
   */
  async trainStep(): Promise<StepLog> {
    const t0 = performance.now();
    const prompts = await this.prompts();
    try {
      const source = this.rolloutSource;
      const { rollouts, generated, distributed } = source ? await source(prompts, this.step) : { ...(await this.rollout(prompts)), distributed: undefined };
      const t1 = performance.now();
      if (!source) await this.score(prompts, rollouts);
      const adv = this.advantages(rollouts);
      const t2 = performance.now();
      const pg = this.gradients(prompts, rollouts, adv);
      const t3 = performance.now();
      const { gradNorm, skipped } = this.update(pg);
      const t4 = performance.now();
      this.step++;
      const log = this.stepLog(rollouts, adv, pg, { gradNorm, skipped, generated }, [t0, t1, t2, t3, t4]);
      if (distributed) log.distributed = distributed;
      this.logs.push(log);
      return log;
    } finally {
      for (const p of prompts) tf.dispose([p.pixels, ...(p.embeds ? [p.embeds] : [])]);
    }
  }

  /** the step's prompts, encoded (the caller disposes their tensors); a frozen vision tower is run once per prompt */
  async prompts(): Promise<StepPrompt[]> {
    const c = this.config;
    const prompts: StepPrompt[] = [];
    try {
      for (let p = 0; p < c.promptsPerStep; p++) {
        const index = this.nextIndex();
        prompts.push(encodeStepPrompt(this.policy, c, await this.data.get(index), index));
      }
    } catch (e) {
      for (const p of prompts) tf.dispose([p.pixels, ...(p.embeds ? [p.embeds] : [])]);
      throw e;
    }
    return prompts;
  }

  /**
   * G sampled responses per prompt (the policy's sampling settings; prompt p's RNG is
   * rolloutRng(seed, step, p)); rolloutBatch 'step' decodes all prompts x G rows in one batch.
   */
  async rollout(prompts: StepPrompt[]): Promise<{ rollouts: Rollout[]; generated: number }> {
    const c = this.config;
    if (c.rolloutBatch === 'step') {
      const r = await batchedRollout(this.policy, prompts, {
        samplesPerPrompt: c.samplesPerPrompt, maxResponseTokens: c.maxResponseTokens, temperature: c.temperature, topP: c.topP, topK: c.topK,
        stopTokens: this.policy.stopTokens, suppressTokens: this.policy.suppressTokens, promptRngs: prompts.map((_, p) => rolloutRng(c.seed, this.step, p)),
      });
      return { rollouts: r.rollouts, generated: r.generated };
    }
    const rollouts: Rollout[] = [];
    let generated = 0;
    for (let p = 0; p < prompts.length; p++) {
      const pr = prompts[p];
      const G = c.samplesPerPrompt;
      const gen = sampleGroup(this.policy, c, pr, rolloutRng(c.seed, this.step, p));
      for (let g = 0; g < G; g++) {
        const resp = gen.tokens[g];
        generated += resp.length;
        rollouts.push({ index: rollouts.length, prompt: p, promptIds: pr.ids, response: resp, text: this.policy.tokenizer.decode(resp, true), reward: 0, components: {} });
      }
    }
    return { rollouts, generated };
  }

  /** each rollout's reward and components, one group (prompt) at a time, through the reward registry */
  async score(prompts: StepPrompt[], rollouts: Rollout[]): Promise<void> {
    for (let p = 0; p < prompts.length; p++) {
      const rs = rollouts.filter(r => r.prompt === p);
      const { sample, view } = prompts[p];
      const results = await scoreGroup(rs.map(r => r.text), { ...sample, image: view }, { config: this.config.rewards, scorer: this.scorer, rewards: this.rewards });
      rs.forEach((r, k) => {
        r.reward = results[k].total;
        for (const [name, v] of Object.entries(results[k].components)) r.components[name] = v.value;
      });
    }
  }

  /** GRPO's group-normalized advantages, indexed by rollout */
  advantages(rollouts: Rollout[]): Float32Array {
    return groupAdvantages(rollouts.map(r => r.reward), rollouts.map(r => r.prompt));
  }

  /**
   * dp_actor.update_policy's gradients over micro-batches of `microBatch` responses (one PPO
   * epoch: logp_old is recomputed just before, so the ratio is 1); every log-prob is of
   * softmax(logits / temperature), the distribution the rollouts were drawn from (as veRL)
   */
  gradients(prompts: StepPrompt[], rollouts: Rollout[], adv: Float32Array): PolicyGradients {
    const pad = this.policy.model.config.pad_token_id;
    const reference = this.config.lora ? 'adapters-off' : this.reference;
    return policyGradients(this.policy.model, reference, rollouts.length, (start, size) => {
      const batch = this.packBatch(rollouts.slice(start, start + size), prompts, pad);
      return { seq: batch.seq, mask: batch.mask, advantages: batch.adv(adv), dispose: batch.dispose };
    }, this.config, { checkpointed: this.config.checkpointed, dropoutSeed: k => loraDropoutSeed(this.config.seed, this.step, k) });
  }

  /** clip and apply the gradients (skipped for a non-finite loss or norm); the gradients are released */
  update(pg: PolicyGradients): StepResult {
    const vars = [...this.policy.model.trainableParameters()];
    return applyGradients(this.optimizer, new Map(vars), pg.grads, { maxNorm: this.config.gradClip, skip: pg.nonFinite });
  }

  /** the step's log entry (log.jsonl): rewards, advantages, losses, lengths, timings, memory */
  stepLog(rollouts: Rollout[], adv: Float32Array, pg: PolicyGradients, u: StepResult & { generated: number }, t: number[]): StepLog {
    const [t0, t1, t2, t3, t4] = t;
    const rw = meanStd(rollouts.map(r => r.reward));
    const comps: Record<string, number> = {};
    for (const k of componentsOf(this.config.rewards.variant, this.rewards)) comps[k] = meanStd(rollouts.map(r => r.components[k] ?? 0)).mean;
    const lens = rollouts.map(r => r.response.length);
    const advs = Array.from(adv);
    return {
      step: this.step, epoch: this.epoch,
      reward: { ...rw, components: comps },
      advantage: { ...meanStd(advs), min: Math.min(...advs), max: Math.max(...advs) },
      loss: { total: pg.loss, pg: pg.metrics.pgLoss, kl: pg.metrics.klLoss, entropy: pg.metrics.entropyLoss, clipFrac: pg.metrics.clipFrac, ppoKl: pg.metrics.ppoKl },
      gradNorm: u.gradNorm, skipped: u.skipped,
      responseLength: { mean: meanStd(lens).mean, max: Math.max(...lens) },
      tokensPerSecond: u.generated / ((t1 - t0) / 1000),
      seconds: { rollout: (t1 - t0) / 1000, reward: (t2 - t1) / 1000, forwardBackward: (t3 - t2) / 1000, optimizer: (t4 - t3) / 1000, total: (t4 - t0) / 1000 },
      memory: { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes },
    };
  }

  /** prompt + response rows, left-padded prompts and right-padded responses, with shared image embeddings (the learner's gradients use it too) */
  packBatch(items: Rollout[], prompts: StepPrompt[], pad: number) {
    const P = Math.max(...items.map(r => r.promptIds.length));
    const R = Math.max(1, ...items.map(r => r.response.length));
    const L = P + R;
    const ids = new Int32Array(items.length * L).fill(pad);
    const att = new Int32Array(items.length * L);
    const mask = new Float32Array(items.length * R);
    items.forEach((r, b) => {
      const off = b * L + P - r.promptIds.length;
      ids.set(r.promptIds, off);
      att.fill(1, off, b * L + P);
      ids.set(r.response, b * L + P);
      att.fill(1, b * L + P, b * L + P + r.response.length);
      mask.fill(1, b * R, b * R + r.response.length);
    });
    const emb = prompts[0].embeds ? tf.concat(items.map(r => prompts[r.prompt].embeds!), 0) as tf.Tensor2D : null;
    const px = prompts[0].embeds ? null : tf.concat(items.map(r => prompts[r.prompt].pixels), 0) as tf.Tensor2D;
    return {
      seq: { ids, batch: items.length, promptLength: P, responseLength: R, attentionMask: att, imageEmbeds: emb, pixelValues: px, grids: items.map(r => prompts[r.prompt].grid) },
      mask,
      adv: (a: Float32Array) => Float32Array.from(items.map(r => a[r.index])),
      dispose: () => tf.dispose([...(emb ? [emb] : []), ...(px ? [px] : [])]),
    };
  }

  /** Run to the configured number of steps (resuming first unless fresh), writing logs, plots and checkpoints. */
  async run(opts: { fresh?: boolean; maxSteps?: number } = {}): Promise<StepLog[]> {
    const c = this.config;
    fs.mkdirSync(c.outDir, { recursive: true });
    const ckDir = path.join(c.outDir, 'checkpoints');
    const logFile = path.join(c.outDir, 'log.jsonl');
    const stale = removeStaleTemps(ckDir);
    if (stale.length) console.error(`grpo: removed ${stale.length} checkpoint temp folder(s) left by an interrupted save in ${ckDir}: ${stale.join(', ')}`);
    if (opts.fresh) {
      // start over: the old run's checkpoints must not be resumed later, nor its steps stay in the log
      clearCheckpoints(ckDir);
      fs.rmSync(logFile, { force: true });
    } else this.resume();
    // the entries past the resumed step (written before a kill) are re-run: drop them, so each step is logged once
    const dropped = trimStepLog(logFile, this.step);
    if (dropped) console.error(`grpo: ${logFile}: dropped ${dropped} entries past step ${this.step} (re-run from the checkpoint)`);
    const total = this.totalSteps;
    const bar = new Progress('grpo', total);
    bar.tick(this.step);
    let ran = 0;
    while (this.step < total && (opts.maxSteps === undefined || ran < opts.maxSteps)) {
      const log = await this.trainStep();
      fs.appendFileSync(logFile, JSON.stringify(log) + '\n');
      ran++;
      if (this.step % c.checkpointEvery === 0 || this.step === total) this.checkpoint();
      bar.tick(1, `reward ${log.reward.mean.toFixed(3)} len ${log.responseLength.mean.toFixed(0)}${log.skipped ? ' SKIPPED' : ''}`);
      this.onStep?.(log);
    }
    await this.writePlots(logFile);
    return this.logs;
  }

  /** the training curves (curves.png: reward, loss, KL, gradient norm, entropy, length; reward.png, length.png) from the JSONL log, one entry per step */
  async writePlots(logFile: string): Promise<void> {
    if (!fs.existsSync(logFile)) return;
    await writeTrainingCurves(this.config.outDir, readStepLog<StepLog & { [k: string]: unknown }>(logFile).entries);
  }
}

