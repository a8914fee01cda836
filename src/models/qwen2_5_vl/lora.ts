/**
 * LoRA on the Qwen2.5-VL policy. `applyLora` attaches adapters (src/nn/lora.ts) to the chosen
 * projections and freezes everything else, so gradients and optimizer state exist for the adapters
 * only; `setAdaptersEnabled(model, false)` gives back the exact base model (the GRPO reference at no
 * extra memory); `mergeLora` folds the updates into the base weights.
 *
 * Targets follow PEFT's rule for a list of names (a module matches when its name equals a target or
 * ends with `.` + target), but scoped: `targetModules` match inside the decoder layers
 * (`model.layers.N.*`), `visionTargetModules` inside the vision blocks (`visual.blocks.N.*`), so the
 * decoder's default `gate_proj` does not also pick the vision MLP's (PEFT's unscoped list would; the
 * saved adapter_config.json therefore names the exact modules, see peft.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Linear } from '../../nn/layers.ts';
import { checkLoraOptions, isLoraParam, LoraAdapter } from '../../nn/lora.ts';
import type { Qwen2_5_VL } from './model.ts';

/** the decoder projections PEFT users target for Qwen2.5 ("all linear" of the decoder layers) */
export const DECODER_TARGETS: readonly string[] = Object.freeze(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
/** the vision blocks' projections (attention qkv/proj and the gated MLP) */
export const VISION_TARGETS: readonly string[] = Object.freeze(['qkv', 'proj', 'gate_proj', 'up_proj', 'down_proj']);

export interface QwenLoraConfig {
  r: number;
  alpha: number;
  dropout?: number;
  rslora?: boolean;
  /** decoder-layer module names (PEFT suffix rule); default DECODER_TARGETS; [] for none */
  targetModules?: readonly string[];
  /** vision-block module names; default none; `vision: true` means VISION_TARGETS */
  visionTargetModules?: readonly string[];
  vision?: boolean;
  /** seed of the adapters' A initialisation (each adapter its own stream); default 0 */
  seed?: number;
}

/** Every Linear an adapter can go on, by hub module name (decoder layers, then vision blocks). */
export function adaptableLinears(model: Qwen2_5_VL): { decoder: Map<string, Linear>; vision: Map<string, Linear> } {
  const decoder = new Map<string, Linear>();
  for (const l of model.model.layers) {
    const a = l.self_attn;
    for (const lin of [a.q_proj, a.k_proj, a.v_proj, a.o_proj, l.mlp.gate_proj, l.mlp.up_proj, l.mlp.down_proj]) decoder.set(lin.prefix, lin);
  }
  const vision = new Map<string, Linear>();
  for (const b of model.visual.blocks) {
    for (const lin of [b.attn.qkv, b.attn.proj, b.mlp.gate_proj, b.mlp.up_proj, b.mlp.down_proj]) vision.set(lin.prefix, lin);
  }
  return { decoder, vision };
}

/** PEFT's list rule: the name equals the target or ends with '.' + target. */
function matches(name: string, targets: readonly string[]): boolean {
  return targets.some(t => name === t || name.endsWith('.' + t));
}

/** The hub module names `config` selects, in model order; an error names a target that selects nothing. */
export function loraTargets(model: Qwen2_5_VL, config: QwenLoraConfig): string[] {
  const { decoder, vision } = adaptableLinears(model);
  const dt = config.targetModules ?? DECODER_TARGETS;
  const vt = config.visionTargetModules ?? (config.vision ? VISION_TARGETS : []);
  const out: string[] = [];
  for (const [scope, mods, targets, field] of [['decoder', decoder, dt, 'targetModules'], ['vision', vision, vt, 'visionTargetModules']] as const) {
    for (const t of targets) {
      if (typeof t !== 'string' || !t) throw new Error(`lora config: ${field} has an empty or non-string entry ${JSON.stringify(t)}`);
      if (![...mods.keys()].some(n => matches(n, [t]))) {
        throw new Error(`lora config: ${field} entry '${t}' matches no ${scope} module (${scope} modules end in ${[...new Set([...mods.keys()].map(n => n.split('.').slice(-2).join('.')))].join(', ')})`);
      }
    }
    for (const n of mods.keys()) if (matches(n, targets)) out.push(n);
  }
  if (!out.length) throw new Error('lora config: no target modules (targetModules and visionTargetModules select nothing)');
  return out;
}

/** The adapters attached to the model, by hub module name, in model order. */
export function loraAdapters(model: Qwen2_5_VL): Map<string, LoraAdapter> {
  const { decoder, vision } = adaptableLinears(model);
  const out = new Map<string, LoraAdapter>();
  for (const [n, lin] of [...decoder, ...vision]) if (lin.adapter instanceof LoraAdapter) out.set(n, lin.adapter);
  return out;
}

/**
 * Attach adapters to the selected projections and freeze the base: afterwards
 * model.trainableParameters() holds exactly the adapters' lora_A / lora_B. A model that already
 * has adapters is refused. `modules`, when given, overrides the config's selection (hub names).
 */
export function applyLora(model: Qwen2_5_VL, config: QwenLoraConfig, modules?: string[]): Map<string, LoraAdapter> {
  checkLoraOptions(config, 'lora config');
  if (loraAdapters(model).size) throw new Error('applyLora: the model already has LoRA adapters');
  const names = modules ?? loraTargets(model, config);
  const { decoder, vision } = adaptableLinears(model);
  const seed = config.seed ?? 0;
  const out = new Map<string, LoraAdapter>();
  names.forEach((n, i) => {
    const lin = decoder.get(n) ?? vision.get(n);
    if (!lin) throw new Error(`applyLora: no adaptable module '${n}'`);
    const a = new LoraAdapter(lin, { r: config.r, alpha: config.alpha, dropout: config.dropout, rslora: config.rslora });
    a.initialize(seed * 7919 + i);
    out.set(n, a);
  });
  model.setTrainable(false, n => !isLoraParam(n));
  model.setTrainable(true, isLoraParam);
  return out;
}

function requireAdapters(model: Qwen2_5_VL, what: string): Map<string, LoraAdapter> {
  const a = loraAdapters(model);
  if (!a.size) throw new Error(`${what}: the model has no LoRA adapters (applyLora first)`);
  return a;
}

/** Adapters on (the trained policy) or off (exactly the base model: the GRPO reference). */
export function setAdaptersEnabled(model: Qwen2_5_VL, on: boolean): void {
  for (const a of requireAdapters(model, 'setAdaptersEnabled').values()) a.setEnabled(on);
}

/** Run `fn` with the adapters off (the reference model), switching them back on after, even on error. */
export function withAdaptersDisabled<T>(model: Qwen2_5_VL, fn: () => T): T {
  setAdaptersEnabled(model, false);
  try {
    return fn();
  } finally {
    setAdaptersEnabled(model, true);
  }
}

/** Dropout on (training forward passes) or off; `seed` makes the masks reproducible (each adapter its own stream). */
export function setLoraTraining(model: Qwen2_5_VL, on: boolean, seed: number | null = null): void {
  let i = 0;
  for (const a of requireAdapters(model, 'setLoraTraining').values()) {
    a.training = on;
    a.dropoutSeed = seed === null ? null : seed * 100003 + 7919 * i++;
  }
}

/** Fold every adapter into its base weight (forward = a plain model; setAdaptersEnabled(false) then refuses). */
export function mergeLora(model: Qwen2_5_VL): void {
  for (const a of requireAdapters(model, 'mergeLora').values()) a.merge();
}

export function unmergeLora(model: Qwen2_5_VL): void {
  for (const a of requireAdapters(model, 'unmergeLora').values()) a.unmerge();
}

/** The adapters' parameters by full name ('model.layers.0.self_attn.q_proj.lora_A.weight', held layout): what the optimizer updates. */
export function loraParameters(model: Qwen2_5_VL): Map<string, tf.Variable> {
  return new Map([...model.namedParameters()].filter(([n]) => isLoraParam(n)));
}

/**
 * The base model's parameters in checkpoint layout with the adapters' updates folded in, one
 * tensor at a time (nothing in the model changes): `names` in model order, `shape(name)`, and
 * `get(name)` (the caller disposes the tensor). A merged or switched-off adapter adds nothing.
 */
export function mergedExporter(model: Qwen2_5_VL): { names: string[]; shape(name: string): number[]; get(name: string): tf.Tensor } {
  const params = new Map([...model.namedParameters()].filter(([n]) => !isLoraParam(n)));
  const transposed = model.transposedNames();
  const byWeight = new Map([...loraAdapters(model)].map(([m, a]) => [`${m}.weight`, a]));
  const param = (name: string) => {
    const v = params.get(name);
    if (!v) throw new Error(`mergedExporter: no base parameter '${name}'`);
    return v;
  };
  return {
    names: [...params.keys()],
    shape: name => (transposed.has(name) ? param(name).shape.slice().reverse() : param(name).shape.slice()),
    get: name => tf.tidy(() => {
      const v = param(name);
      const a = byWeight.get(name);
      const held = a && a.enabled && !a.merged ? tf.add(v, a.deltaWeightHeld()) : v;
      return transposed.has(name) ? tf.transpose(held) : held.clone();
    }),
  };
}
