/**
 * What the three demo pretraining recipes (pretrain_clip.ts, pretrain_sam2.ts,
 * pretrain_policy.ts) share: the seeded initialisation, the training loop (AdamW, gradient
 * clipping, warm-up and cosine decay, checkpoints), the save, and the manifest.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { worldSample, type WorldSample } from '../data/world/generator.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import type { Module } from '../nn/module.ts';
import { AdamW } from '../optim/adamw.ts';
import { warmupCosine } from '../optim/schedule.ts';
import { optimizerStep } from '../optim/step.ts';
import { Progress } from '../util/progress.ts';

/** One run: where it writes and what its manifest records. */
export interface RunContext {
  /** the model directory written (config, weights, manifest); it must exist */
  out: string;
  /** the seed of data order and initialisation */
  seed: number;
  /** the command line the manifest records */
  command: string;
  /** checkpoint every N steps */
  every: number;
  /** the model directory the run continues from: its manifest is recorded as `from` */
  init?: string;
  /** where the result lines go (default console.log) */
  log?: (line: string) => void;
}

export interface Manifest {
  model: string;
  command: string;
  seed: number;
  steps: number;
  lr: number;
  seconds: number;
  finalLoss: number;
  metrics: Record<string, number>;
  backend: string;
  from?: Record<string, unknown>;
}

/** deterministic init: every parameter from a seeded normal/uniform of its module's default scale */
export function seedInit(m: Module, s: number): void {
  let k = 0;
  for (const [n, v] of m.namedParameters()) {
    if (/(norm|ln_|layernorm|ln)\w*\.weight$|\.weight$/.test(n) && v.rank === 1) { v.assign(tf.onesLike(v)); continue; }
    if (v.rank === 1 || /bias$/.test(n)) { v.assign(tf.zerosLike(v)); continue; }
    const fanIn = v.rank >= 2 ? v.size / (v.shape[v.rank === 2 ? 1 : 0] as number) : 1;
    v.assign(tf.randomNormal(v.shape, 0, Math.min(0.05, 1 / Math.sqrt(Math.max(fanIn, 1))), 'float32', s * 7919 + k++));
  }
}

/** train sample i of a run (salted per recipe), from the world's first 20000 */
export const trainSample = (i: number, salt = 0): WorldSample => worldSample('train', (i * 7 + salt) % 20000);

/**
 * `steps` AdamW steps (weight decay 0.01, gradients clipped to norm 1, a 20-step warm-up into a
 * cosine decay of `lr`) on the model's trainable parameters; a step whose loss or gradient norm is
 * not finite is skipped. Checkpoints (`save`) every ctx.every steps, then evaluates, saves and
 * writes the manifest, and logs `<name>: <metrics> -> <out>`.
 */
export function trainLoop(ctx: RunContext, name: string, model: Module, steps: number, lr: number, step: (i: number) => tf.Scalar, evaluate: () => Record<string, number>, save: () => void): Manifest {
  const opt = new AdamW({ lr, weightDecay: 0.01 });
  const params = model.trainableParameters();
  const bar = new Progress(name, steps);
  let ema = NaN;
  const t0 = Date.now();
  for (let i = 0; i < steps; i++) {
    // cosine decay with a short warm-up; a non-finite loss or gradient norm skips the update
    const { loss } = optimizerStep(opt, params, () => step(i), { maxNorm: 1.0, lr: lr * warmupCosine(i, steps) });
    ema = Number.isNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
    bar.tick(1, `loss ${ema.toFixed(4)}`);
    if ((i + 1) % ctx.every === 0 && i + 1 < steps) save();
  }
  opt.dispose();
  const metrics = evaluate();
  save();
  // a run continued with --init records the run it started from (and that one's own origin), so the
  // whole recipe is reproducible from the manifest
  const initManifest = ctx.init ? path.join(ctx.init, 'manifest.json') : null;
  let from: Record<string, unknown> | undefined;
  if (initManifest && fs.existsSync(initManifest)) {
    const m = JSON.parse(fs.readFileSync(initManifest, 'utf8'));
    from = { command: m.command, seed: m.seed, steps: m.steps, lr: m.lr, seconds: m.seconds, metrics: m.metrics, from: m.from };
  }
  const manifest: Manifest = { model: name, command: ctx.command, seed: ctx.seed, steps, lr, seconds: (Date.now() - t0) / 1000, finalLoss: ema, metrics, backend: tf.getBackend(), ...(from ? { from } : {}) };
  writeJsonAtomic(path.join(ctx.out, 'manifest.json'), manifest);
  (ctx.log ?? console.log)(`${name}: ${JSON.stringify(metrics)} -> ${ctx.out}`);
  return manifest;
}

/** write the model's weights (F16, metadata format "dpad" plus `extra`) and its config.json into `out` */
export function saveModel(out: string, m: Module, config: object, extra: Record<string, string> = {}): void {
  const t = m.exportTensors();
  try {
    writeSafetensors(path.join(out, 'model.safetensors'), t, { dtype: 'F16', metadata: { format: 'dpad', ...extra } });
  } finally {
    tf.dispose([...t.values()]);
  }
  writeJsonAtomic(path.join(out, 'config.json'), config);
}
