/**
 * The trainer's LoRA wiring (config.lora): the adapters attached from the config, and the seeds of
 * their dropout masks. The adapters themselves are models/qwen2_5_vl/lora.ts's.
 */
import { applyLora, loraAdapters, loraTargets, type QwenLoraConfig } from '../models/qwen2_5_vl/lora.ts';
import type { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import type { LoraTrainConfig } from './config.ts';

/** The seed of the LoRA dropout masks of micro-batch k at `step` (0-based, before the update): a function of the run's position only. */
export function loraDropoutSeed(seed: number, step: number, k: number): number {
  return (step + 1) * 4096 + k + (seed % 65536) * 7;
}

/** The applyLora options of a config's lora section (A initialised from the run's seed). */
export function qwenLoraConfig(lora: LoraTrainConfig, seed: number): QwenLoraConfig {
  return { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, rslora: lora.rslora, targetModules: lora.targetModules, vision: lora.vision, seed };
}

/**
 * Attach the config's adapters to `model`, or check that the ones it has (e.g. loaded with
 * loadPeftAdapter to continue training) are the config's: same modules, r, alpha, dropout, rsLoRA.
 */
export function attachLora(model: Qwen2_5_VL, lora: LoraTrainConfig, seed: number): void {
  const cfg = qwenLoraConfig(lora, seed);
  const have = loraAdapters(model);
  if (!have.size) {
    applyLora(model, cfg);
    return;
  }
  const want = loraTargets(model, cfg);
  if ([...have.keys()].join() !== want.join()) throw new Error(`trainer: the policy's LoRA adapters (${have.size} modules) are not the ones config 'lora' selects (${want.length} modules)`);
  for (const [m, a] of have) {
    if (a.r !== lora.r || a.alpha !== lora.alpha || a.dropout !== lora.dropout || a.rslora !== lora.rslora || a.merged) {
      throw new Error(`trainer: ${m}: the policy's adapter has r=${a.r}, alpha=${a.alpha}, dropout=${a.dropout}, rslora=${a.rslora}${a.merged ? ', merged' : ''}; config 'lora' says r=${lora.r}, alpha=${lora.alpha}, dropout=${lora.dropout}, rslora=${lora.rslora}`);
    }
  }
}
