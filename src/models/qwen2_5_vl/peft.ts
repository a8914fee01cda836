/**
 * LoRA adapters in PEFT's format, and merge-and-export to a full HF checkpoint.
 *
 * An adapter directory holds `adapter_config.json` (LoraConfig.to_dict(): peft_type "LORA", r,
 * lora_alpha, lora_dropout, use_rslora, target_modules, bias "none", task_type "CAUSAL_LM", ...)
 * and `adapter_model.safetensors` with PEFT's keys: `base_model.model.<module>.lora_A.weight`
 * [r, in] and `...lora_B.weight` [out, r], F32, no adapter name. `<module>` is the module name in
 * the transformers model PEFT wrapped: since transformers 4.52 (4.57 included)
 * `model.language_model.layers.N.self_attn.q_proj` and `model.visual.blocks.N.attn.qkv`; before,
 * `model.layers.N...` and `visual.blocks.N...`. Adapters are saved in the current naming (or the
 * legacy one on request) and both load. `target_modules` is written as a regular expression that
 * PEFT fullmatches against module names, selecting exactly the adapted modules in either naming
 * (a plain list such as ["gate_proj"] would also pick the vision tower's MLP in PEFT).
 *
 * The merged export writes config.json, the shards (`model-0000N-of-0000M.safetensors` +
 * `model.safetensors.index.json`, or one `model.safetensors`) and the tokenizer files, into a
 * temporary directory renamed into place. Its keys are the released hub layout (`model.layers.*`,
 * `visual.*`), which transformers 4.52-4.57 also write (save_pretrained reverts the renaming);
 * `layout: 'transformers'` writes the module names instead. loadQwen reads either.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeJsonAtomic } from '../../io/atomic.ts';
import { DTYPE_BYTES, encode, numel } from '../../io/dtypes.ts';
import { SafetensorsFile, writeSafetensors } from '../../io/safetensors.ts';
import { toTensor } from '../../io/source.ts';
import { qwenConfigFrom } from './config.ts';
import { applyLora, loraAdapters, mergedExporter, type QwenLoraConfig } from './lora.ts';
import type { Qwen2_5_VL } from './model.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const PEFT_PREFIX = 'base_model.model.';

/** 'transformers': module names of transformers >= 4.52 (model.language_model.*, model.visual.*); 'hub': the released layout */
export type QwenKeyLayout = 'transformers' | 'hub';

/** hub module name (model.layers.0.mlp.up_proj, visual.blocks.0.attn.qkv) -> the name in `layout` */
export function qwenModuleName(hub: string, layout: QwenKeyLayout): string {
  if (layout === 'hub') return hub;
  if (hub.startsWith('model.')) return 'model.language_model.' + hub.slice('model.'.length);
  if (hub.startsWith('visual.')) return 'model.' + hub;
  return hub; // lm_head
}

/** a module name in either layout -> the hub name */
export function hubModuleName(name: string): string {
  if (name.startsWith('model.language_model.')) return 'model.' + name.slice('model.language_model.'.length);
  if (name.startsWith('model.visual.')) return name.slice('model.'.length);
  return name;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A regular expression (Python `re.fullmatch`, as PEFT applies a string target_modules) that
 * selects exactly `modules` (hub names) in both namings. Layers sharing a suffix set collapse to \d+
 * when every layer of the stack has it.
 */
export function targetModulesRegex(model: Qwen2_5_VL, modules: string[]): string {
  const parts: string[] = [];
  const stacks = [
    { re: /^model\.layers\.(\d+)\.(.+)$/, head: '(?:model\\.language_model|model)\\.layers\\.', count: model.config.num_hidden_layers },
    { re: /^visual\.blocks\.(\d+)\.(.+)$/, head: '(?:model\\.)?visual\\.blocks\\.', count: model.config.vision_config.depth },
  ];
  for (const s of stacks) {
    const bySuffix = new Map<string, number[]>();
    for (const m of modules) {
      const g = s.re.exec(m);
      if (g) bySuffix.set(g[2], [...(bySuffix.get(g[2]) ?? []), Number(g[1])]);
    }
    const byLayers = new Map<string, string[]>();
    for (const [suffix, layers] of bySuffix) {
      const key = layers.length === s.count ? '\\d+' : `(?:${[...new Set(layers)].sort((a, b) => a - b).join('|')})`;
      byLayers.set(key, [...(byLayers.get(key) ?? []), suffix]);
    }
    for (const [layers, suffixes] of byLayers) parts.push(`${s.head}${layers}\\.(?:${suffixes.map(esc).join('|')})`);
  }
  const known = modules.filter(m => !stacks.some(s => s.re.test(m)));
  if (known.length) throw new Error(`peft: cannot name module(s) ${known.join(', ')} in target_modules`);
  return parts.length === 1 ? parts[0] : `(?:${parts.join('|')})`;
}

export interface SaveAdapterOptions {
  /** adapter_config.json's base_model_name_or_path (e.g. "Qwen/Qwen2.5-VL-7B-Instruct"); default null */
  baseModel?: string | null;
  /** module naming of the keys; default 'transformers' (what PEFT writes with transformers 4.52-4.57) */
  layout?: QwenKeyLayout;
}

/** Save the model's adapters as a PEFT LoRA adapter directory; returns the keys written. */
export function savePeftAdapter(model: Qwen2_5_VL, dir: string, opts: SaveAdapterOptions = {}): string[] {
  const adapters = loraAdapters(model);
  if (!adapters.size) throw new Error(`savePeftAdapter ${dir}: the model has no LoRA adapters`);
  const first = [...adapters.values()][0];
  for (const [m, a] of adapters) {
    if (a.r !== first.r || a.alpha !== first.alpha || a.rslora !== first.rslora || a.dropout !== first.dropout) {
      throw new Error(`savePeftAdapter ${dir}: ${m} has r=${a.r}, alpha=${a.alpha}, rslora=${a.rslora}, dropout=${a.dropout}, unlike the others (one LoraConfig per adapter)`);
    }
    if (a.merged) throw new Error(`savePeftAdapter ${dir}: ${m} is merged into the base weight; unmergeLora first`);
  }
  const layout = opts.layout ?? 'transformers';
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [m, a] of adapters) {
      const base = PEFT_PREFIX + qwenModuleName(m, layout);
      tensors.set(`${base}.lora_A.weight`, tf.transpose(a.loraA)); // [r, in]
      tensors.set(`${base}.lora_B.weight`, tf.transpose(a.loraB)); // [out, r]
    }
    fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), tensors, { metadata: { format: 'pt' } });
  } finally {
    tf.dispose([...tensors.values()]);
  }
  writeJsonAtomic(path.join(dir, ADAPTER_CONFIG), peftConfigJson(model, [...adapters.keys()], first, opts.baseModel ?? null));
  return [...tensors.keys()];
}

function peftConfigJson(model: Qwen2_5_VL, modules: string[], a: { r: number; alpha: number; dropout: number; rslora: boolean }, base: string | null): Record<string, unknown> {
  // LoraConfig's fields (peft 0.17), sorted as PeftConfig.save_pretrained writes them
  const c: Record<string, unknown> = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: base, bias: 'none', corda_config: null, eva_config: null,
    exclude_modules: null, fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, layer_replication: null,
    layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: a.alpha, lora_bias: false, lora_dropout: a.dropout,
    megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', qalora_group_size: 16, r: a.r,
    rank_pattern: {}, revision: null, target_modules: targetModulesRegex(model, modules), target_parameters: null, task_type: 'CAUSAL_LM',
    trainable_token_indices: null, use_dora: false, use_qalora: false, use_rslora: a.rslora,
  };
  return c;
}

/** What an adapter_config.json says, checked: the fields this implementation honours, refusing the ones it does not. */
export function readPeftConfig(file: string): { r: number; alpha: number; dropout: number; rslora: boolean; targetModules: string | string[] | null; baseModel: string | null } {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file (a PEFT adapter directory holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${file}: not a JSON object`);
  const bad = (field: string, want: string) => new Error(`${file}: ${field} must be ${want}, got ${JSON.stringify(c[field])}`);
  if (c.peft_type !== 'LORA') throw bad('peft_type', '"LORA"');
  if (!Number.isInteger(c.r) || (c.r as number) < 1) throw bad('r', 'a whole number >= 1');
  if (typeof c.lora_alpha !== 'number' || !Number.isFinite(c.lora_alpha)) throw bad('lora_alpha', 'a number');
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad('lora_dropout', 'a number in [0, 1)');
  if (c.use_rslora !== undefined && typeof c.use_rslora !== 'boolean') throw bad('use_rslora', 'true or false');
  if ((c.bias ?? 'none') !== 'none') throw bad('bias', '"none" (bias training is not supported)');
  for (const f of ['use_dora', 'fan_in_fan_out', 'lora_bias', 'use_qalora']) if (c[f] !== undefined && c[f] !== false) throw bad(f, 'false (not supported)');
  for (const f of ['rank_pattern', 'alpha_pattern']) {
    const v = c[f];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v as object).length)) throw bad(f, 'empty (per-module ranks are not supported)');
  }
  for (const f of ['modules_to_save', 'layers_to_transform', 'trainable_token_indices', 'layer_replication', 'target_parameters']) {
    const v = c[f];
    if (v !== undefined && v !== null && !(Array.isArray(v) && !v.length)) throw bad(f, 'null (not supported)');
  }
  const tm = c.target_modules ?? null;
  if (tm !== null && typeof tm !== 'string' && !(Array.isArray(tm) && tm.every(t => typeof t === 'string'))) throw bad('target_modules', 'a string, a list of strings or null');
  return { r: c.r as number, alpha: c.lora_alpha, dropout, rslora: c.use_rslora === true, targetModules: tm as string | string[] | null, baseModel: typeof c.base_model_name_or_path === 'string' ? c.base_model_name_or_path : null };
}

/** Does PEFT's target_modules select `hub` (in either naming)? null when the regex is not readable here. */
function targeted(tm: string | string[] | null, hub: string): boolean | null {
  const names = [qwenModuleName(hub, 'transformers'), hub];
  if (tm === null) return null;
  if (Array.isArray(tm)) return names.some(n => tm.some(t => n === t || n.endsWith('.' + t)));
  if (tm === 'all-linear') return true;
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${tm})$`);
  } catch {
    return null;
  }
  return names.some(n => re.test(n));
}

/**
 * Load a PEFT LoRA adapter directory onto the model. A model without adapters gets them (on the
 * modules the file holds, with the file's r, alpha, dropout and rsLoRA; base frozen as applyLora
 * does); a model with adapters must have the same modules and settings, and its values are
 * replaced. Every key is checked before anything is assigned; errors name the key.
 */
export function loadPeftAdapter(model: Qwen2_5_VL, dir: string, opts: { seed?: number } = {}): QwenLoraConfig {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const cfg = readPeftConfig(cfgFile);
  const wFile = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(wFile)) throw new Error(`${wFile}: no such file (a PEFT adapter directory holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  const shapes = new Map<string, { in: number; out: number }>();
  for (const l of [...model.model.layers.flatMap(l => [l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj, l.self_attn.o_proj, l.mlp.gate_proj, l.mlp.up_proj, l.mlp.down_proj]),
    ...model.visual.blocks.flatMap(b => [b.attn.qkv, b.attn.proj, b.mlp.gate_proj, b.mlp.up_proj, b.mlp.down_proj])]) shapes.set(l.prefix, { in: l.inFeatures, out: l.outFeatures });
  const f = SafetensorsFile.open(wFile);
  const plan = new Map<string, { A?: string; B?: string }>();
  const problems: string[] = [];
  const faulty = new Set<string>();
  try {
    for (const k of f.keys()) {
      const g = /^(.*)\.lora_([AB])\.weight$/.exec(k);
      if (!k.startsWith(PEFT_PREFIX) || !g) { problems.push(`${k}: not a PEFT LoRA key (base_model.model.<module>.lora_A.weight / lora_B.weight)`); continue; }
      const hub = hubModuleName(g[1].slice(PEFT_PREFIX.length));
      const dims = shapes.get(hub);
      if (!dims) { problems.push(`${k}: no module ${g[1].slice(PEFT_PREFIX.length)} in the model that takes an adapter`); continue; }
      if (targeted(cfg.targetModules, hub) === false) { problems.push(`${k}: ${ADAPTER_CONFIG} target_modules does not select this module`); continue; }
      const want = g[2] === 'A' ? [cfg.r, dims.in] : [dims.out, cfg.r];
      const got = f.meta(k).shape;
      if (got.join() !== want.join()) { problems.push(`${k}: expected [${want}] (r=${cfg.r}), got [${got}]`); faulty.add(hub); continue; }
      const p = plan.get(hub) ?? {};
      if (p[g[2] as 'A' | 'B']) { problems.push(`${k}: the module's lora_${g[2]} appears twice (both namings)`); continue; }
      p[g[2] as 'A' | 'B'] = k;
      plan.set(hub, p);
    }
    for (const [m, p] of plan) if ((!p.A || !p.B) && !faulty.has(m)) problems.push(`${m}: lora_${p.A ? 'B' : 'A'}.weight is missing`);
    if (!plan.size && !problems.length) problems.push('no adapter tensors');
    const ordered = [...shapes.keys()].filter(m => plan.has(m));
    const config: QwenLoraConfig = { r: cfg.r, alpha: cfg.alpha, dropout: cfg.dropout, rslora: cfg.rslora, seed: opts.seed };
    let adapters = loraAdapters(model);
    if (adapters.size && !problems.length) {
      const have = [...adapters.keys()];
      if (have.join() !== ordered.join()) problems.push(`the model's adapters (${have.length} modules) are not the file's (${ordered.length} modules)`);
      for (const [m, a] of adapters) {
        if (a.r !== cfg.r || a.alpha !== cfg.alpha || a.rslora !== cfg.rslora) { problems.push(`${m}: the model's adapter has r=${a.r}, alpha=${a.alpha}, rslora=${a.rslora}; the file r=${cfg.r}, alpha=${cfg.alpha}, rslora=${cfg.rslora}`); break; }
        if (a.merged) { problems.push(`${m}: the model's adapter is merged; unmergeLora first`); break; }
      }
    }
    if (problems.length) throw new Error(`${wFile}: the adapter does not fit the model: ${problems.length} problem(s): ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? '; ...' : ''}`);
    const values = new Map<string, [tf.Tensor, tf.Tensor]>();
    try {
      for (const m of ordered) {
        const p = plan.get(m)!;
        values.set(m, [tf.tidy(() => tf.transpose(toTensor(f.read(p.A!)).cast('float32'))), tf.tidy(() => tf.transpose(toTensor(f.read(p.B!)).cast('float32')))]);
      }
      if (!adapters.size) adapters = applyLora(model, config, ordered);
      for (const [m, [a, b]] of values) {
        adapters.get(m)!.loraA.assign(a);
        adapters.get(m)!.loraB.assign(b);
      }
    } finally {
      for (const [a, b] of values.values()) tf.dispose([a, b]);
    }
    return config;
  } finally {
    f.close();
  }
}

export interface ExportOptions {
  /** the base model directory: config.json and tokenizer files are copied from it (else config.json is written from the model's config) */
  baseDir?: string;
  /** key naming; default 'hub' (the released layout, which transformers 4.52-4.57 save_pretrained writes too) */
  layout?: QwenKeyLayout;
  /** 'F32' (default) or 'BF16' (the hub's dtype) */
  dtype?: 'F32' | 'BF16';
  /** shard size limit in bytes; default 5 GB (save_pretrained's max_shard_size "5GB") */
  maxShardBytes?: number;
  /** replace an existing directory; default false */
  overwrite?: boolean;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'preprocessor_config.json', 'chat_template.json',
  'chat_template.jinja', 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'added_tokens.json', 'dpad.json'];

/** config.json for the model's QwenConfig (the HF Qwen2_5_VLConfig fields). */
export function qwenConfigJson(model: Qwen2_5_VL, dtype: string): Record<string, unknown> {
  const { mrope_section, vision_config, ...text } = model.config;
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'], model_type: 'qwen2_5_vl', ...text,
    rope_scaling: { type: 'default', mrope_section, rope_type: 'default' }, vision_config: { ...vision_config },
    torch_dtype: dtype, use_cache: true,
  };
}

/** The base directory's config.json must describe this model (else the export would pair weights with another model's config). */
function checkBaseConfig(model: Qwen2_5_VL, file: string): void {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file (baseDir must be the base model's directory)`);
  const c = qwenConfigFrom(JSON.parse(fs.readFileSync(file, 'utf8')), file) as unknown as Record<string, unknown>;
  const mine = model.config as unknown as Record<string, unknown>;
  for (const k of Object.keys(mine)) {
    if (JSON.stringify(c[k]) !== JSON.stringify(mine[k])) throw new Error(`${file}: ${k} is ${JSON.stringify(c[k])} but the model has ${JSON.stringify(mine[k])} (not this model's base directory)`);
  }
}

/**
 * Write the model with its adapters merged as a full HF-layout checkpoint in `out` (a directory
 * loadQwen / loadPolicy reads; with baseDir's tokenizer files also a Python from_pretrained
 * directory). One tensor is materialised at a time. Returns the shard names.
 */
export function exportMergedQwen(model: Qwen2_5_VL, out: string, opts: ExportOptions = {}): string[] {
  const layout = opts.layout ?? 'hub';
  const dtype = opts.dtype ?? 'F32';
  const maxShard = opts.maxShardBytes ?? 5e9;
  if (fs.existsSync(out) && !opts.overwrite) throw new Error(`${out}: already exists (pass overwrite to replace it)`);
  if (opts.baseDir) checkBaseConfig(model, path.join(opts.baseDir, 'config.json'));
  const ex = mergedExporter(model);
  const v = model.config.vision_config;
  // the patch embedding is a Conv3d kernel in HF checkpoints: [embed, C, T, P, P]
  const shapeOf = (n: string) => (n === 'visual.patch_embed.proj.weight' ? [v.hidden_size, v.in_chans, v.temporal_patch_size, v.patch_size, v.patch_size] : ex.shape(n));
  const key = (n: string) => {
    const w = n.endsWith('.weight') ? '.weight' : n.endsWith('.bias') ? '.bias' : '';
    return qwenModuleName(n.slice(0, n.length - w.length), layout) + w;
  };
  // plan the shards by size first (their names carry the count)
  const shards: string[][] = [];
  let size = 0;
  let total = 0;
  for (const n of ex.names) {
    const bytes = numel(shapeOf(n)) * DTYPE_BYTES[dtype];
    if (!shards.length || (size + bytes > maxShard && shards[shards.length - 1].length)) { shards.push([]); size = 0; }
    shards[shards.length - 1].push(n);
    size += bytes;
    total += bytes;
  }
  const names = shards.map((_, i) => (shards.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const weightMap: Record<string, string> = {};
    shards.forEach((group, i) => {
      const tensors = new Map<string, { dtype: 'F32' | 'BF16'; shape: number[]; bytes: () => Uint8Array }>();
      for (const n of group) {
        tensors.set(key(n), { dtype, shape: shapeOf(n), bytes: () => { const t = ex.get(n); try { return encode(t.dataSync(), dtype); } finally { t.dispose(); } } });
        weightMap[key(n)] = names[i];
      }
      writeSafetensors(path.join(tmp, names[i]), tensors, { metadata: { format: 'pt' } });
    });
    if (shards.length > 1) writeJsonAtomic(path.join(tmp, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: weightMap });
    const torchDtype = dtype === 'BF16' ? 'bfloat16' : 'float32';
    const cfg = opts.baseDir ? { ...JSON.parse(fs.readFileSync(path.join(opts.baseDir, 'config.json'), 'utf8')), torch_dtype: torchDtype } : qwenConfigJson(model, torchDtype);
    writeJsonAtomic(path.join(tmp, 'config.json'), cfg);
    if (opts.baseDir) for (const t of TOKENIZER_FILES) if (fs.existsSync(path.join(opts.baseDir, t))) fs.copyFileSync(path.join(opts.baseDir, t), path.join(tmp, t));
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return names;
}
