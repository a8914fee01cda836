/**
 * Training checkpoints that lose nothing: the policy's parameters, the optimizer's moments, and
 * the trainer state (step, data position, RNG state, config) written into a temporary directory
 * that is renamed into place, then a `latest` pointer replaced atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import { toTensor } from '../io/source.ts';
import type { Module } from '../nn/module.ts';
import type { AdamW } from './adamw.ts';

export interface TrainerState {
  step: number;
  /** index into the epoch's order, and the epoch */
  cursor: number;
  epoch: number;
  /** seedrandom state object */
  rng: unknown;
  [k: string]: unknown;
}

export function saveCheckpoint(dir: string, step: number, model: Module, opt: AdamW, state: TrainerState): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = `step-${String(step).padStart(6, '0')}`;
  const final = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  const params = model.exportTensors();
  try {
    writeSafetensors(path.join(tmp, 'model.safetensors'), params, { metadata: { step: String(step) } });
  } finally {
    tf.dispose([...params.values()]);
  }
  const os = opt.state();
  const moments = new Map<string, tf.Tensor>();
  for (const [k, t] of os.m) moments.set(`m.${k}`, t);
  for (const [k, t] of os.v) moments.set(`v.${k}`, t);
  try {
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), moments, { metadata: { step: String(os.step) } });
  } finally {
    tf.dispose([...moments.values()]);
  }
  writeJsonAtomic(path.join(tmp, 'state.json'), { ...state, optimizerStep: os.step });
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  writeFileAtomic(path.join(dir, 'latest'), name + '\n');
  return final;
}

/** The newest complete checkpoint directory, or null. */
export function latestCheckpoint(dir: string): string | null {
  const p = path.join(dir, 'latest');
  if (!fs.existsSync(p)) return null;
  const d = path.join(dir, fs.readFileSync(p, 'utf8').trim());
  return fs.existsSync(path.join(d, 'state.json')) ? d : null;
}

/** Restore parameters and optimizer state; returns the trainer state. Names are the module's (held layout handled by load). */
export function loadCheckpoint(ckpt: string, model: Module, opt: AdamW): TrainerState {
  const state = JSON.parse(fs.readFileSync(path.join(ckpt, 'state.json'), 'utf8')) as TrainerState & { optimizerStep: number };
  const ms = SafetensorsFile.open(path.join(ckpt, 'model.safetensors'));
  try {
    model.load(ms, { where: path.join(ckpt, 'model.safetensors') });
  } finally {
    ms.close();
  }
  const os = SafetensorsFile.open(path.join(ckpt, 'optimizer.safetensors'));
  const m = new Map<string, tf.Tensor>();
  const v = new Map<string, tf.Tensor>();
  try {
    for (const k of os.keys()) {
      const t = toTensor(os.read(k));
      if (k.startsWith('m.')) m.set(k.slice(2), t);
      else if (k.startsWith('v.')) v.set(k.slice(2), t);
      else t.dispose();
    }
  } finally {
    os.close();
  }
  opt.loadState({ step: state.optimizerStep, m, v });
  tf.dispose([...m.values(), ...v.values()]);
  return state;
}
