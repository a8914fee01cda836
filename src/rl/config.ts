/**
 * The GRPO trainer's configuration; defaults are the released 7B run's (REFERENCE.md sections 6 and 10):
 * micro-batch 1 (per-response token mean, averaged over responses), the whole policy trained
 * (vision tower included), and, when `steps` is null, len(dataloader) - 1 updates (186 for 3,000 prompts).
 * TRAIN_SCHEMA is the one table of types, ranges, defaults and docs: trainConfig / readTrainConfig
 * check a config against it (unknown keys refused with a did-you-mean, errors naming the file and the
 * field), and configDifferences tells which saved fields a resumed run may not change.
 */
import * as fs from 'node:fs';
import { DECODER_TARGETS } from '../models/qwen2_5_vl/lora.ts';
import { DEFAULT_ADAMW } from '../optim/adamw.ts';
import { DEFAULT_REWARD_CONFIG, REWARD_COMPONENTS, type RewardComponent, type RewardConfig, type RewardVariant } from '../rewards/registry.ts';
import type { DiscriminativeMode } from '../rewards/components.ts';
import { ConfigError, deepFreeze, defaultsOf, leaves, shown, validate, type Infer, type Schema } from '../util/schema.ts';

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
  /**
   * how rollouts are decoded: 'prompt' = each prompt's G rows in one decode (what distributed workers
   * do, so a synchronous distributed run is byte-identical); 'step' = all prompts x G rows of a step
   * in one batched decode (src/rl/rollout.ts; faster on the native backend, other samples)
   */
  rolloutBatch: 'prompt' | 'step';
  /**
   * the log-prob / gradient pass of each micro-batch through the gradient-checkpointed pass of
   * models/qwen2_5_vl/checkpointed.ts: each half decoder layer is recomputed in the backward (one
   * half layer taped at a time; the MLP backward in chunks of positions) and the LM head runs on
   * the response positions only, so the activation memory is bounded by one layer at real size.
   * The same losses and gradients within 1e-5 (float rounding), slower (every layer runs twice).
   * false: one plain tape over the whole forward (fast; fine for small models)
   */
  checkpointed: boolean;
  rewards: RewardConfig;
  /** LoRA GRPO: adapters trained on the frozen base, the reference = the base with the adapters off; null: full fine-tuning */
  lora: LoraTrainConfig | null;
  /** rollout workers and a learner over NATS JetStream (src/dist/, docs/distributed.md); null: one process */
  distributed: DistributedConfig | null;
  checkpointEvery: number;
  outDir: string;
}

/** The `lora` section (PEFT's LoraConfig fields; models/qwen2_5_vl/lora.ts applies it). */
export interface LoraTrainConfig {
  /** rank */
  r: number;
  /** lora_alpha; scaling alpha / r (alpha / sqrt(r) with rslora) */
  alpha: number;
  /** lora_dropout on the adapters' inputs during the gradient pass (never in rollouts or the old / reference log-probs) */
  dropout: number;
  rslora: boolean;
  /** decoder-layer module names, PEFT's suffix rule (default: q, k, v, o and the MLP projections) */
  targetModules: string[];
  /** also adapt the vision blocks (qkv, proj, the MLP); needs freezeVision false */
  vision: boolean;
}

/** The `distributed` section: where the NATS server is, the JetStream names, the staleness bound. */
export interface DistributedConfig {
  /** nats:// URL of the server (comma-separated for a cluster) */
  server: string;
  /** names the run's subjects and objects, so several runs can share a server */
  run: string;
  /** the work-queue stream of prompt messages the workers pull */
  promptsStream: string;
  /** the stream of scored groups the learner reads, by step */
  groupsStream: string;
  /** the object store bucket of the versioned weights (full weights, or the LoRA adapter) */
  weightsBucket: string;
  /** the largest allowed lag (learner version - the version a group was generated with); 0: synchronous */
  maxStaleness: number;
  /** responses per group; null: samplesPerPrompt (a group is the G responses of one prompt) */
  groupSize: number | null;
  /** seconds before an unacknowledged prompt (a worker died mid-group) is redelivered */
  ackWaitSeconds: number;
}

/** KL estimators of the penalty to the reference (veRL core_algos.kl_penalty) */
export const KL_TYPES = ['kl', 'abs', 'mse', 'low_var_kl'] as const;
export type KlType = (typeof KL_TYPES)[number];

const DISCRIMINATIVE_MODES = ['binary', 'difference', 'scaled'] as const satisfies readonly DiscriminativeMode[];
const REWARD_VARIANTS = ['dpad', 'baseline'] as const satisfies readonly RewardVariant[];

/** The reward part; its defaults are the rewards layer's table (DEFAULT_REWARD_CONFIG). */
const REWARD_SCHEMA = {
  variant: { type: 'enum', values: REWARD_VARIANTS, default: DEFAULT_REWARD_CONFIG.variant, doc: "'dpad' (caption in the format, discriminative reward) or 'baseline' (Seg-Zero)" },
  discriminative: { type: 'enum', values: DISCRIMINATIVE_MODES, default: DEFAULT_REWARD_CONFIG.discriminative, doc: 'the discriminative formulation: binary (the paper), difference (ablation) or scaled (the released code)' },
  weights: {
    type: 'object', doc: 'per-component weights of the summed reward (the paper: all 1)',
    fields: Object.fromEntries(REWARD_COMPONENTS.map(k => [k, { type: 'number', default: DEFAULT_REWARD_CONFIG.weights[k], doc: `weight of the ${k} reward` }])) as Record<RewardComponent, { type: 'number'; default: number; doc: string }>,
  },
} as const satisfies Schema;

/** The LoRA section; its defaults are what PEFT users train Qwen2.5-VL with (r 8, alpha 16, all the decoder's linear layers). */
const LORA_SCHEMA = {
  r: { type: 'int', min: 1, default: 8, doc: 'adapter rank' },
  alpha: { type: 'number', min: 0, exclusiveMin: true, default: 16, doc: 'lora_alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rslora)' },
  dropout: { type: 'number', min: 0, max: 1, exclusiveMax: true, default: 0, doc: "lora_dropout on the adapters' inputs in the gradient pass (seeded by the step: resume stays exact)" },
  rslora: { type: 'boolean', default: false, doc: 'rank-stabilised scaling alpha / sqrt(r) (PEFT use_rslora)' },
  targetModules: { type: 'strings', default: DECODER_TARGETS, doc: "decoder-layer modules that get adapters (PEFT's suffix rule: 'q_proj' or 'self_attn.q_proj'); [] with vision true for the vision tower only" },
  vision: { type: 'boolean', default: false, doc: "also adapt the vision blocks' qkv, proj and MLP (needs freezeVision false)" },
} as const satisfies Schema;

/** The distributed section (src/dist/): defaults for one machine on loopback. */
const DISTRIBUTED_SCHEMA = {
  server: { type: 'string', default: 'nats://127.0.0.1:4222', doc: 'the NATS server URL (nats://host:port; comma-separated for a cluster)' },
  run: { type: 'string', default: 'dpad', doc: "the run's name: subjects <stream>.<run>.* and objects <run>/*, so runs can share a server" },
  promptsStream: { type: 'string', default: 'DPAD_PROMPTS', doc: 'JetStream work-queue stream of the prompts the workers pull' },
  groupsStream: { type: 'string', default: 'DPAD_GROUPS', doc: 'JetStream stream of the scored groups (kept on disk until their step is checkpointed)' },
  weightsBucket: { type: 'string', default: 'dpad-weights', doc: 'JetStream object store bucket of the versioned weights (the LoRA adapter with lora)' },
  maxStaleness: { type: 'int', min: 0, default: 0, doc: 'the largest version lag of a trained group (0: synchronous, byte-identical to one process); older groups are dropped and counted' },
  groupSize: { type: 'int', min: 2, nullable: true, default: null, doc: 'responses per group (null: samplesPerPrompt; any other value must equal it)' },
  ackWaitSeconds: { type: 'number', min: 0, exclusiveMin: true, default: 600, doc: "seconds before a prompt a worker took but did not finish is redelivered (longer than one group's generation)" },
} as const satisfies Schema;

/**
 * The one table of the training config: types, ranges, defaults (the released 7B run's) and docs.
 * DEFAULT_TRAIN_CONFIG and DEFAULT_GRPO_LOSS (loss.ts) are read from it; its AdamW defaults are
 * optim/adamw.ts's DEFAULT_ADAMW (the optimizer sits below the trainer).
 */
export const TRAIN_SCHEMA = {
  seed: { type: 'int', default: 9, doc: 'seeds the data order and the sampling' },
  promptsPerStep: { type: 'int', min: 1, default: 16, doc: 'prompts per GRPO step' },
  samplesPerPrompt: {
    type: 'int', min: 2, default: 8, doc: 'responses sampled per prompt (the group size G)',
    note: "with 1 sample per prompt every advantage is zero (GRPO normalizes each reward within its prompt's group), so nothing is learned",
  },
  temperature: { type: 'number', min: 0, exclusiveMin: true, default: 1.0, doc: 'sampling temperature (the log-probs are of the tempered distribution too)', note: 'the logits are divided by it, so 0 gives NaN log-probs (for near-greedy sampling use a small value such as 0.1)' },
  topP: { type: 'number', min: 0, max: 1, exclusiveMin: true, default: 1.0, doc: 'nucleus sampling mass (1: off)' },
  topK: { type: 'int', min: 0, default: 0, doc: 'top-k sampling (0: off)' },
  maxResponseTokens: { type: 'int', min: 1, default: 1300, doc: 'most tokens generated per response' },
  maxPromptTokens: { type: 'int', min: 1, default: 1300, doc: 'longest prompt allowed (a longer one stops the run)' },
  lr: { type: 'number', min: 0, default: DEFAULT_ADAMW.lr, doc: 'AdamW learning rate' },
  weightDecay: { type: 'number', min: 0, default: DEFAULT_ADAMW.weightDecay, doc: 'AdamW decoupled weight decay' },
  betas: { type: 'tuple', min: 0, max: 1, exclusiveMax: true, default: [DEFAULT_ADAMW.betas[0], DEFAULT_ADAMW.betas[1]], doc: 'AdamW moment decay rates' },
  eps: { type: 'number', min: 0, default: DEFAULT_ADAMW.eps, doc: 'AdamW denominator epsilon' },
  gradClip: { type: 'number', min: 0, exclusiveMin: true, default: 1.0, doc: 'global gradient-norm clip' },
  clipRatio: { type: 'number', min: 0, default: 0.2, doc: 'PPO ratio clip' },
  klCoef: { type: 'number', min: 0, default: 5e-3, doc: 'weight of the KL penalty to the frozen reference (0: no reference needed)' },
  klType: { type: 'enum', values: KL_TYPES, default: 'low_var_kl', doc: 'KL estimator (low_var_kl: k3, clamped to [-10, 10])' },
  entropyCoef: { type: 'number', min: 0, default: 1e-3, doc: 'weight of the entropy bonus' },
  microBatch: { type: 'int', min: 1, default: 1, doc: 'responses per micro-batch (must divide promptsPerStep x samplesPerPrompt)' },
  steps: { type: 'int', min: 0, nullable: true, default: null, doc: "updates to run; null: what 'stepCount' gives for one pass over the data" },
  stepCount: { type: 'enum', values: ['verl', 'epoch'], default: 'verl', doc: "with steps null: 'verl' = len(dataloader) - 1 updates (the released run), 'epoch' = len(dataloader)" },
  freezeVision: { type: 'boolean', default: false, doc: 'keep the vision tower frozen (the released run trains it)' },
  rolloutBatch: { type: 'enum', values: ['prompt', 'step'], default: 'prompt', doc: "'prompt': each prompt's G rows in one decode (as distributed workers); 'step': all rows of a step in one batched decode (faster on native)" },
  checkpointed: { type: 'boolean', default: false, doc: "the log-prob / gradient pass with gradient checkpointing (models/qwen2_5_vl/checkpointed.ts: per half decoder layer, MLP backward in chunks, the LM head on the response positions only): memory bounded by one layer at real size (true for a real-size LoRA GRPO step), the same results within 1e-5, slower" },
  rewards: { type: 'object', fields: REWARD_SCHEMA, doc: 'the composite reward' },
  lora: { type: 'object', nullable: true, fields: LORA_SCHEMA, doc: 'LoRA GRPO (null: full fine-tuning): adapters on the frozen base; the KL reference is the base with the adapters off (no second model); checkpoints hold the adapter' },
  distributed: { type: 'object', nullable: true, fields: DISTRIBUTED_SCHEMA, doc: 'rollout workers and a learner over NATS JetStream (null: one process); docs/distributed.md' },
  checkpointEvery: { type: 'int', min: 1, default: 10, doc: 'steps between checkpoints (the last step is always saved)' },
  outDir: { type: 'string', default: 'runs/grpo', doc: 'the run folder: log.jsonl, curves, checkpoints/' },
} as const satisfies Schema;

// the interface and the schema describe the same type (a compile error here means they drifted)
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesInterface: Same<Infer<typeof TRAIN_SCHEMA>, TrainConfig> = true;
void schemaMatchesInterface;

/** The defaults (frozen: copy before changing; trainConfig returns a fresh value). */
export const DEFAULT_TRAIN_CONFIG: TrainConfig = deepFreeze(defaultsOf(TRAIN_SCHEMA));

/**
 * A partial config (e.g. a JSON file's) over the defaults: unknown keys are refused with a
 * did-you-mean (in `rewards` and `rewards.weights` too), every field is type- and range-checked,
 * and microBatch must divide promptsPerStep x samplesPerPrompt. `where` (the file) starts the errors.
 */
export function trainConfig(partial: DeepPartial<TrainConfig> = {}, where = 'config'): TrainConfig {
  const c = validate(TRAIN_SCHEMA, partial, where);
  const perStep = c.promptsPerStep * c.samplesPerPrompt;
  if (perStep % c.microBatch !== 0) throw new ConfigError(`${where}: 'microBatch' (${c.microBatch}) must divide promptsPerStep x samplesPerPrompt (${perStep}), as veRL requires`);
  if (c.lora) {
    if (c.lora.vision && c.freezeVision) throw new ConfigError(`${where}: 'lora.vision' true needs 'freezeVision' false (a frozen vision tower is run once per prompt, without gradients)`);
    if (!c.lora.vision && !c.lora.targetModules.length) throw new ConfigError(`${where}: 'lora.targetModules' is empty and 'lora.vision' is false: no module would get an adapter`);
  }
  const d = c.distributed;
  if (d && c.rolloutBatch === 'step') throw new ConfigError(`${where}: 'rolloutBatch' 'step' decodes all prompts of a step in one batch, which workers (one prompt each) cannot reproduce bit for bit; use 'prompt' with 'distributed'`);
  if (d) {
    if (d.groupSize !== null && d.groupSize !== c.samplesPerPrompt) throw new ConfigError(`${where}: 'distributed.groupSize' (${d.groupSize}) must equal 'samplesPerPrompt' (${c.samplesPerPrompt}): a group is the G responses of one prompt (or leave it null)`);
    for (const u of d.server.split(',')) {
      if (!/^(nats|tls|ws|wss):\/\/[^\s/]+$/.test(u.trim())) throw new ConfigError(`${where}: 'distributed.server' must be nats://host:port (comma-separated for a cluster), got ${shown(d.server)}`);
    }
    for (const k of ['promptsStream', 'groupsStream', 'run'] as const) {
      if (!/^[A-Za-z0-9_-]+$/.test(d[k])) throw new ConfigError(`${where}: 'distributed.${k}' may hold letters, digits, '_' and '-' only (a JetStream name and subject token), got ${shown(d[k])}`);
    }
    if (!/^[A-Za-z0-9_-]+$/.test(d.weightsBucket)) throw new ConfigError(`${where}: 'distributed.weightsBucket' may hold letters, digits, '_' and '-' only, got ${shown(d.weightsBucket)}`);
  }
  return c;
}

type DeepPartialValue<V> = V extends readonly unknown[] ? V : V extends object ? DeepPartial<V> : V;
export type DeepPartial<T> = { [K in keyof T]?: DeepPartialValue<T[K]> };

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

/** Read and check a training config JSON file; every error names the file (and the line, for bad JSON). */
export function readTrainConfig(file: string): TrainConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read the training config (${(e as Error).message})`);
  }
  return trainConfig(parseJsonFile(text, file) as DeepPartial<TrainConfig>, file);
}

/** JSON.parse with the file, and the line and column when the parser gives a position, in the error. */
export function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = / at position (\d+)/.exec(msg);
    let at = '';
    if (m) {
      const before = text.slice(0, Number(m[1]));
      const line = before.split('\n').length;
      at = ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
    }
    throw new ConfigError(`${file}: invalid JSON${at} (${msg})`);
  }
}

/**
 * Fields that may differ between a checkpoint's config and the run resuming it: they do not change
 * what any step computes. outDir and checkpointEvery are where and how often it is saved; steps and
 * stepCount only say how far to go (no schedule depends on the total, so a run can be extended or
 * stopped early); maxPromptTokens is a guard that stops the run, never changes a value. Every other
 * field (seed, sampling, optimizer, loss, rewards, ...) changes the run and must match.
 */
export const RESUME_NEUTRAL_FIELDS: readonly string[] = ['outDir', 'checkpointEvery', 'steps', 'stepCount', 'maxPromptTokens'];

/**
 * Sections that may differ (or be switched on or off) on resume: `distributed` says where the
 * rollouts are made, not what a step computes (with maxStaleness 0 a distributed step is the
 * single-process one), so a single-process run may be continued by a learner and back.
 */
export const RESUME_NEUTRAL_SECTIONS: readonly string[] = ['distributed'];

export interface ConfigDifference {
  /** dotted path, e.g. 'lr' or 'rewards.weights.iou' */
  field: string;
  saved: unknown;
  current: unknown;
}

/**
 * The fields (leaves, dotted) where a checkpoint's saved config differs from the running one in a
 * way that changes the run. Fields the saved config lacks (a checkpoint older than the field) are
 * not compared.
 */
export function configDifferences(saved: unknown, current: TrainConfig): ConfigDifference[] {
  const have = new Map(leaves(saved));
  const out: ConfigDifference[] = [];
  // a nullable section (lora) switched on or off is one difference, named by the section
  const sections = new Set<string>();
  const s = saved !== null && typeof saved === 'object' ? saved as Record<string, unknown> : {};
  for (const [k, f] of Object.entries(TRAIN_SCHEMA)) {
    if (f.type !== 'object' || !('nullable' in f) || !Object.hasOwn(s, k) || RESUME_NEUTRAL_SECTIONS.includes(k)) continue;
    const cur = (current as unknown as Record<string, unknown>)[k];
    if ((s[k] === null) !== (cur === null)) { out.push({ field: k, saved: s[k], current: cur }); sections.add(k); }
  }
  for (const [field, v] of leaves(current)) {
    if (RESUME_NEUTRAL_FIELDS.includes(field.split('.')[0]) || RESUME_NEUTRAL_SECTIONS.includes(field.split('.')[0]) || sections.has(field.split('.')[0]) || !have.has(field)) continue;
    const s = have.get(field);
    if (JSON.stringify(s) !== JSON.stringify(v)) out.push({ field, saved: s, current: v });
  }
  return out;
}
