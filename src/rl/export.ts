/**
 * Trained weights a user can take away: a training run's latest checkpoint (full fine-tuning or
 * LoRA) becomes a weights directory that `segment` / `eval --weights` (pipeline/bundle.ts
 * loadWeights) accept:
 *
 *   <out>/policy/   the trained policy, adapters merged: a full HF-layout Qwen2.5-VL checkpoint
 *                   (config.json, model.safetensors or shards + index, the base's tokenizer files
 *                   and dpad.json); `layout` 'hub' (the released key names, default) or 'transformers'
 *   <out>/sam2/     copied from the base weights directory
 *   <out>/clip/     copied from the base weights directory (when it has one)
 *   <out>/adapter/  LoRA runs only: the adapter in PEFT's format (adapter_config.json +
 *                   adapter_model.safetensors), for Python peft on the base model
 *   <out>/export.json  what was exported: the run, the checkpoint, its step, the base, the options
 *
 * The base weights are the run's (run.json, written by examples/train.ts) unless given. The
 * directory is written under a temporary name and renamed into place.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../io/atomic.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { loraAdapters } from '../models/qwen2_5_vl/lora.ts';
import { exportMergedQwen, loadPeftAdapter, savePeftAdapter, type QwenKeyLayout } from '../models/qwen2_5_vl/peft.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom } from '../pipeline/bundle.ts';
import type { Policy } from '../pipeline/policy.ts';
import { ADAPTER_DIR, checkpointWeights, latestCheckpoint, readCheckpointState, type CheckpointWeights } from './checkpoint.ts';

export interface ExportRunOptions {
  /** a run folder (its checkpoints/latest) or one checkpoint folder (with state.json) */
  run: string;
  /** the weights directory to write */
  out: string;
  /** the base weights directory (policy/, sam2/, clip/); default: the run's run.json, else weights/demo */
  weights?: string;
  /** key naming of the merged policy; default 'hub' */
  layout?: QwenKeyLayout;
  /** 'F32' (default) or 'BF16' (the hub's dtype) */
  dtype?: 'F32' | 'BF16';
  /** adapter_config.json's base_model_name_or_path; default the base policy directory (absolute) */
  baseModel?: string;
  /** replace an existing `out`; default false */
  overwrite?: boolean;
}

export interface ExportRunResult {
  checkpoint: string;
  step: number;
  kind: CheckpointWeights;
  weights: string;
  out: string;
  /** the merged policy's safetensors files */
  shards: string[];
  /** the adapter's tensor keys (LoRA runs), else [] */
  adapterKeys: string[];
}

/** The checkpoint a run folder (or a checkpoint folder) names; an error says what was looked for. */
export function runCheckpoint(run: string): string {
  if (!fs.existsSync(run)) throw new Error(`${run}: no such run folder`);
  if (fs.existsSync(path.join(run, 'state.json'))) return run;
  const ck = latestCheckpoint(path.join(run, 'checkpoints'));
  if (!ck) throw new Error(`${run}: no checkpoint (expected checkpoints/latest of a training run, or a checkpoint folder with state.json)`);
  return ck;
}

/** The base weights a run started from: run.json's `weights` (a checkpoint folder: two levels up), else null. */
export function runBaseWeights(run: string): string | null {
  for (const f of [path.join(run, 'run.json'), path.join(run, '..', '..', 'run.json')]) {
    if (!fs.existsSync(f)) continue;
    const w = JSON.parse(fs.readFileSync(f, 'utf8')).weights;
    if (typeof w === 'string' && w) return w;
  }
  return null;
}

/** Load the base policy from `weights` and apply the checkpoint to it (adapter, or every parameter). */
export function loadTrainedPolicy(ckpt: string, weights: string): Policy {
  const policy = loadPolicyFrom(weights);
  try {
    if (checkpointWeights(ckpt) === 'adapter') loadPeftAdapter(policy.model, path.join(ckpt, ADAPTER_DIR));
    else {
      const file = path.join(ckpt, 'model.safetensors');
      if (!fs.existsSync(file)) throw new Error(`${ckpt}: neither ${ADAPTER_DIR}/ (LoRA) nor model.safetensors (full fine-tuning)`);
      const f = SafetensorsFile.open(file);
      try {
        policy.model.load(f, { where: file });
      } finally {
        f.close();
      }
    }
    return policy;
  } catch (e) {
    policy.model.dispose();
    throw e;
  }
}

/** Export a run's latest checkpoint as a weights directory (see the file's comment). */
export function exportRun(o: ExportRunOptions): ExportRunResult {
  const ckpt = runCheckpoint(o.run);
  const state = readCheckpointState(ckpt);
  const kind = checkpointWeights(ckpt);
  const weights = o.weights ?? runBaseWeights(o.run) ?? DEFAULT_WEIGHTS;
  for (const sub of ['policy', 'sam2']) {
    if (!fs.existsSync(path.join(weights, sub))) throw new Error(`${weights}: no ${sub}/ folder (the base weights directory must hold policy/, sam2/ and optionally clip/; pass --weights)`);
  }
  if (fs.existsSync(o.out) && !o.overwrite) throw new Error(`${o.out}: already exists (pass --overwrite to replace it)`);
  const out = path.resolve(o.out);
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const policy = loadTrainedPolicy(ckpt, weights);
  try {
    const basePolicy = path.resolve(weights, 'policy');
    let adapterKeys: string[] = [];
    // the adapter first: savePeftAdapter needs it unmerged (exportMergedQwen folds it in on the fly, changing nothing)
    if (loraAdapters(policy.model).size) adapterKeys = savePeftAdapter(policy.model, path.join(tmp, ADAPTER_DIR), { baseModel: o.baseModel ?? basePolicy });
    const shards = exportMergedQwen(policy.model, path.join(tmp, 'policy'), { baseDir: basePolicy, layout: o.layout ?? 'hub', dtype: o.dtype ?? 'F32' });
    for (const sub of ['sam2', 'clip']) {
      const from = path.join(weights, sub);
      if (fs.existsSync(from)) fs.cpSync(from, path.join(tmp, sub), { recursive: true, dereference: true });
    }
    writeJsonAtomic(path.join(tmp, 'export.json'), {
      run: path.resolve(o.run), checkpoint: path.resolve(ckpt), step: state.step, kind, weights: path.resolve(weights),
      layout: o.layout ?? 'hub', dtype: o.dtype ?? 'F32', lora: (state.config as { lora?: unknown } | undefined)?.lora ?? null,
    });
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    return { checkpoint: ckpt, step: state.step, kind, weights, out: o.out, shards, adapterKeys };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    policy.model.dispose();
  }
}
