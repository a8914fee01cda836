/** The GRPO trainer's configuration; defaults are the paper's / the released 7B run's (SPEC section 3). */
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
  /** responses per forward/backward pass (gradient accumulation over the step) */
  microBatch: number;
  /** null: one epoch over the data */
  steps: number | null;
  /** keep the vision tower frozen (the released run trains the decoder) */
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
  microBatch: 4,
  steps: null,
  freezeVision: true,
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
  if (!['dpad', 'baseline'].includes(c.rewards.variant)) throw new Error(`${where}: rewards.variant must be 'dpad' or 'baseline'`);
  return c;
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
