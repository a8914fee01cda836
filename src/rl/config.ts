/**
 * The GRPO trainer's configuration; defaults are the released 7B run's (REFERENCE.md sections 6 and 10):
 * micro-batch 1 (per-response token mean, averaged over responses), the whole policy trained
 * (vision tower included), and, when `steps` is null, len(dataloader) - 1 updates (186 for 3,000 prompts).
 */
import * as fs from 'node:fs';
import { DEFAULT_REWARD_CONFIG, type RewardConfig } from '../rewards/composite.ts';
import type { KlType } from './loss.ts';

export interface TrainConfig {
  seed: number;
  /** prompts per step and samples per prompt (G) */
  promptsPerStep: number;
  samplesPerPrompt: number;
  temperature: number;
  topP: number;
  topK: number;
  maxResponseTokens: number;
  maxPromptTokens: number;
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  gradClip: number;
  clipRatio: number;
  klCoef: number;
  klType: KlType;
  entropyCoef: number;
  /**
   * responses per micro-batch of dp_actor.update_policy: each micro-batch's terms are masked means
   * over its own tokens, divided by (responses per step / microBatch). 1 (the released run):
   * every response's token mean weighs the same; promptsPerStep x samplesPerPrompt: one token mean
   * over the step. Must divide promptsPerStep x samplesPerPrompt (veRL asserts it).
   */
  microBatch: number;
  /** updates to run; null: the count `stepCount` gives for one pass over the data */
  steps: number | null;
  /**
   * with steps null: 'verl' = len(dataloader) - 1 updates, len(dataloader) = floor(size / promptsPerStep)
   * (drop_last), as the released run does (its loop breaks before training the last batch: 3,000 prompts
   * -> 187 batches -> 186 updates); 'epoch' = len(dataloader) updates, a full epoch
   */
  stepCount: 'verl' | 'epoch';
  /** keep the vision tower frozen; false (the released run): the whole policy is trained */
  freezeVision: boolean;
  rewards: RewardConfig;
  checkpointEvery: number;
  outDir: string;
}

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  seed: 9,
  promptsPerStep: 16,
  samplesPerPrompt: 8,
  temperature: 1.0,
  topP: 1.0,
  topK: 0,
  maxResponseTokens: 1300,
  maxPromptTokens: 1300,
  lr: 1e-6,
  weightDecay: 1e-2,
  betas: [0.9, 0.999],
  eps: 1e-8,
  gradClip: 1.0,
  clipRatio: 0.2,
  klCoef: 5e-3,
  klType: 'low_var_kl',
  entropyCoef: 1e-3,
  microBatch: 1,
  steps: null,
  stepCount: 'verl',
  freezeVision: false,
  rewards: DEFAULT_REWARD_CONFIG,
  checkpointEvery: 10,
  outDir: 'runs/grpo',
};

/** Merge a partial config (e.g. a JSON file's) over the defaults, checking types and ranges. */
export function trainConfig(partial: Partial<TrainConfig> = {}, where = 'config'): TrainConfig {
  const c: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, ...partial, rewards: { ...DEFAULT_REWARD_CONFIG, ...(partial.rewards ?? {}), weights: { ...DEFAULT_REWARD_CONFIG.weights, ...(partial.rewards?.weights ?? {}) } } };
  const pos = ['promptsPerStep', 'samplesPerPrompt', 'maxResponseTokens', 'maxPromptTokens', 'microBatch', 'checkpointEvery'] as const;
  for (const k of pos) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`${where}: '${k}' must be a positive integer (got ${JSON.stringify(c[k])})`);
  for (const k of ['lr', 'weightDecay', 'clipRatio', 'klCoef', 'entropyCoef', 'gradClip', 'temperature'] as const) {
    if (typeof c[k] !== 'number' || !(c[k] >= 0)) throw new Error(`${where}: '${k}' must be a number >= 0 (got ${JSON.stringify(c[k])})`);
  }
  const perStep = c.promptsPerStep * c.samplesPerPrompt;
  if (perStep % c.microBatch !== 0) throw new Error(`${where}: 'microBatch' (${c.microBatch}) must divide promptsPerStep x samplesPerPrompt (${perStep}), as veRL requires`);
  if (c.steps !== null && (!Number.isInteger(c.steps) || c.steps < 0)) throw new Error(`${where}: 'steps' must be null or an integer >= 0 (got ${JSON.stringify(c.steps)})`);
  if (c.stepCount !== 'verl' && c.stepCount !== 'epoch') throw new Error(`${where}: 'stepCount' must be 'verl' or 'epoch' (got ${JSON.stringify(c.stepCount)})`);
  if (typeof c.freezeVision !== 'boolean') throw new Error(`${where}: 'freezeVision' must be true or false (got ${JSON.stringify(c.freezeVision)})`);
  if (!['dpad', 'baseline'].includes(c.rewards.variant)) throw new Error(`${where}: rewards.variant must be 'dpad' or 'baseline'`);
  return c;
}

/**
 * Updates in one pass over `size` prompts when no step count is configured. The dataloader drops the
 * last partial batch, so it has floor(size / promptsPerStep) batches; 'verl' subtracts one, as the
 * released run's loop does (global_steps is incremented and compared with len(dataloader) before the
 * batch is trained). A dataset of a single batch gives 0 updates under 'verl', as in veRL; 'epoch'
 * runs at least one update (a dataset smaller than one batch is cycled).
 */
export function defaultStepCount(size: number, promptsPerStep: number, rule: TrainConfig['stepCount']): number {
  const batches = Math.floor(size / promptsPerStep);
  if (rule === 'epoch') return Math.max(1, batches);
  if (batches < 1) throw new Error(`config: ${size} prompts make no full batch of promptsPerStep ${promptsPerStep} (the last partial batch is dropped); set 'steps'`);
  return batches - 1;
}

export function readTrainConfig(file: string): TrainConfig {
  let raw: Partial<TrainConfig>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the training config (${(e as Error).message})`);
  }
  return trainConfig(raw, file);
}
