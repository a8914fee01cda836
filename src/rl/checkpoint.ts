/**
 * Training checkpoints that lose nothing: the policy's parameters, the optimizer's moments, and
 * the trainer state (step, data position, RNG state, config) written into a temporary directory
 * that is renamed into place, then a `latest` pointer replaced atomically.
 *
 * A full fine-tuning checkpoint holds `model.safetensors` (every parameter). A LoRA checkpoint
 * (weights 'adapter') holds only `adapter/` in PEFT's format (adapter_config.json +
 * adapter_model.safetensors): the base is frozen, so resuming loads the base weights, then the
 * adapter. The optimizer's moments exist for the trained parameters only either way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import { toTensor } from '../io/source.ts';
import { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import { loadPeftAdapter, savePeftAdapter } from '../models/qwen2_5_vl/peft.ts';
import type { Module } from '../nn/module.ts';
import type { AdamW } from '../optim/adamw.ts';

/** What a checkpoint holds of the model: every parameter ('full') or the LoRA adapter only ('adapter'). */
export type CheckpointWeights = 'full' | 'adapter';

/** the PEFT adapter folder inside a LoRA checkpoint */
export const ADAPTER_DIR = 'adapter';

/** Which weights a checkpoint directory holds (by its files). */
export function checkpointWeights(ckpt: string): CheckpointWeights {
  return fs.existsSync(path.join(ckpt, ADAPTER_DIR, 'adapter_config.json')) ? 'adapter' : 'full';
}

function qwenOf(model: Module, what: string): Qwen2_5_VL {
  if (!(model instanceof Qwen2_5_VL)) throw new Error(`${what}: a LoRA checkpoint needs the Qwen2.5-VL policy model`);
  return model;
}

export interface TrainerState {
  step: number;
  /** index into the epoch's order, and the epoch */
  cursor: number;
  epoch: number;
  /** seedrandom state object */
  rng: unknown;
  [k: string]: unknown;
}

export function saveCheckpoint(dir: string, step: number, model: Module, opt: AdamW, state: TrainerState, weights: CheckpointWeights = 'full'): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = `step-${String(step).padStart(6, '0')}`;
  const final = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  if (weights === 'adapter') savePeftAdapter(qwenOf(model, final), path.join(tmp, ADAPTER_DIR));
  else {
    const params = model.exportTensors();
    try {
      writeSafetensors(path.join(tmp, 'model.safetensors'), params, { metadata: { step: String(step) } });
    } finally {
      tf.dispose([...params.values()]);
    }
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

/**
 * Restore parameters and optimizer state; returns the trainer state. Names are the module's (held
 * layout handled by load). `weights` is what the run trains: a LoRA run ('adapter') loads the
 * checkpoint's adapter onto the model's (the base must already be loaded); a checkpoint of the
 * other kind is refused.
 */
export function loadCheckpoint(ckpt: string, model: Module, opt: AdamW, weights: CheckpointWeights = 'full'): TrainerState {
  const state = readCheckpointState(ckpt);
  const has = checkpointWeights(ckpt);
  if (has !== weights) {
    throw new Error(has === 'adapter'
      ? `${ckpt}: the checkpoint holds a LoRA adapter (${ADAPTER_DIR}/) but this run fine-tunes the whole model (its config has no 'lora'); use the run's config or --fresh`
      : `${ckpt}: the checkpoint holds the whole model (model.safetensors) but this run trains LoRA adapters; use the run's config or --fresh`);
  }
  if (weights === 'adapter') loadPeftAdapter(qwenOf(model, ckpt), path.join(ckpt, ADAPTER_DIR));
  else {
    const ms = SafetensorsFile.open(path.join(ckpt, 'model.safetensors'));
    try {
      model.load(ms, { where: path.join(ckpt, 'model.safetensors') });
    } finally {
      ms.close();
    }
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

/** `.step-000010.tmp-<pid>`: a checkpoint being written (saveCheckpoint), or left by a crash mid-save */
const TEMP_DIR = /^\.step-\d+\.tmp-(\d+)$/;
/** `.latest.tmp-<pid>-...`: writeFileAtomic's temp file of the `latest` pointer */
const TEMP_FILE = /^\.latest\.tmp-(\d+)-/;

function alive(pid: number): boolean {
  if (pid === process.pid) return false; // this process is not saving yet: a leftover of an earlier failure
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove the temp folders (and `latest` temp files) that a crash mid-save left in a checkpoint
 * directory: at 7B each is a whole model and optimizer. Those of a process still running (another
 * save in progress) are left alone. Returns the names removed.
 */
export function removeStaleTemps(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = TEMP_DIR.exec(name) ?? TEMP_FILE.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** Remove every checkpoint of a run (step folders, the `latest` pointer, temp folders): a fresh start. */
export function clearCheckpoints(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (!/^step-\d+$/.test(name) && name !== 'latest' && !TEMP_DIR.test(name) && !TEMP_FILE.test(name)) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The saved trainer state of a checkpoint (config included), without loading any tensor. */
export function readCheckpointState(ckpt: string): TrainerState & { optimizerStep: number } {
  const file = path.join(ckpt, 'state.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the checkpoint state (${(e as Error).message})`);
  }
}
