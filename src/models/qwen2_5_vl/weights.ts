/**
 * Qwen2.5-VL checkpoint layouts: the released 'hub' layout (visual.*, model.*, lm_head.*) and the
 * layout transformers >= 4.52 saves (model.visual.*, model.language_model.*, lm_head.*). Both map
 * onto the model's hub names; a tied LM head has no lm_head.weight.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../io/checkpoint.ts';
import type { TensorSource } from '../../io/source.ts';
import type { LoadReport } from '../../nn/module.ts';
import { qwenConfigFrom, type QwenConfig } from './config.ts';
import { Qwen2_5_VL } from './model.ts';

/** checkpoint key -> model parameter name (hub layout), or null for keys the model does not use */
export function qwenKeyMap(tied: boolean): (key: string) => string | null {
  return (k: string) => {
    let p = k;
    if (p.startsWith('model.visual.')) p = p.slice('model.'.length);
    else if (p.startsWith('model.language_model.')) p = 'model.' + p.slice('model.language_model.'.length);
    if (tied && p === 'lm_head.weight') return null;
    return p;
  };
}

export function loadQwenWeights(model: Qwen2_5_VL, src: TensorSource): LoadReport {
  const tied = model.config.tie_word_embeddings;
  return model.load(src, {
    map: qwenKeyMap(tied),
    ignore: k => (tied && (k === 'lm_head.weight')) || k.endsWith('.inv_freq'),
    transform: (p, t) => {
      if (p === 'visual.patch_embed.proj.weight' && t.rank === 5) {
        const r = t.reshape([t.shape[0], -1]);
        t.dispose();
        return r;
      }
      return t;
    },
    // the 5-D patch kernel [out, C, T, P, P] is held as [out, C*T*P*P]
    transformShape: (p, shape) => (p === 'visual.patch_embed.proj.weight' && shape.length === 5 ? [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)] : shape),
  });
}

/** Load from a model directory (config.json + model.safetensors or the sharded index). */
export function loadQwen(dir: string, config?: QwenConfig): Qwen2_5_VL {
  const cfgFile = path.join(dir, 'config.json');
  if (!config && !fs.existsSync(cfgFile)) throw new Error(`${dir}: no config.json`);
  const cfg = config ?? qwenConfigFrom(JSON.parse(fs.readFileSync(cfgFile, 'utf8')), cfgFile);
  return loadModel(dir, () => new Qwen2_5_VL(cfg), loadQwenWeights);
}
