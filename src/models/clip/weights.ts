/**
 * Checkpoint layouts of CLIP and their mapping onto the model (OpenAI's state-dict names).
 * HF `CLIPModel` keys map one to one except q/k/v, which OpenAI fuses into in_proj, and the
 * two projections, which HF stores transposed as Linear weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../../io/checkpoint.ts';
import { toTensor, type TensorSource } from '../../io/source.ts';
import { clipConfigFrom, type ClipConfig } from './config.ts';
import { ClipModel } from './model.ts';

export type ClipLayout = 'openai' | 'hf';

/** HF key -> OpenAI key for everything but q/k/v (handled by fusing). */
export function hfToOpenAIKey(k: string): string | null {
  const table: Record<string, string> = {
    'vision_model.embeddings.patch_embedding.weight': 'visual.conv1.weight',
    'vision_model.embeddings.class_embedding': 'visual.class_embedding',
    'vision_model.embeddings.position_embedding.weight': 'visual.positional_embedding',
    'vision_model.pre_layrnorm.weight': 'visual.ln_pre.weight',
    'vision_model.pre_layrnorm.bias': 'visual.ln_pre.bias',
    'vision_model.post_layernorm.weight': 'visual.ln_post.weight',
    'vision_model.post_layernorm.bias': 'visual.ln_post.bias',
    'visual_projection.weight': 'visual.proj',
    'text_model.embeddings.token_embedding.weight': 'token_embedding.weight',
    'text_model.embeddings.position_embedding.weight': 'positional_embedding',
    'text_model.final_layer_norm.weight': 'ln_final.weight',
    'text_model.final_layer_norm.bias': 'ln_final.bias',
    'text_projection.weight': 'text_projection',
    logit_scale: 'logit_scale',
  };
  if (k in table) return table[k];
  const m = /^(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)$/.exec(k);
  if (!m) return null;
  const base = `${m[1] === 'vision' ? 'visual.' : ''}transformer.resblocks.${m[2]}.`;
  const sub: Record<string, string> = {
    'layer_norm1.weight': 'ln_1.weight', 'layer_norm1.bias': 'ln_1.bias',
    'layer_norm2.weight': 'ln_2.weight', 'layer_norm2.bias': 'ln_2.bias',
    'mlp.fc1.weight': 'mlp.c_fc.weight', 'mlp.fc1.bias': 'mlp.c_fc.bias',
    'mlp.fc2.weight': 'mlp.c_proj.weight', 'mlp.fc2.bias': 'mlp.c_proj.bias',
    'self_attn.out_proj.weight': 'attn.out_proj.weight', 'self_attn.out_proj.bias': 'attn.out_proj.bias',
  };
  return m[3] in sub ? base + sub[m[3]] : null;
}

/** Buffers that checkpoints carry and the model does not need. */
const IGNORED = /(^|\.)position_ids$|^(input_resolution|context_length|vocab_size)$/;

export function detectLayout(src: TensorSource): ClipLayout {
  return src.keys().some(k => k.startsWith('vision_model.') || k.startsWith('text_model.')) ? 'hf' : 'openai';
}

/**
 * Read a CLIP checkpoint into OpenAI-named tensors (the caller disposes them).
 * Unknown keys are returned under their own names so strict loading reports them.
 */
export function clipTensors(src: TensorSource, layout: ClipLayout = detectLayout(src)): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const qkv = new Map<string, Partial<Record<'q' | 'k' | 'v', tf.Tensor>>>();
  for (const k of src.keys()) {
    if (IGNORED.test(k)) continue;
    if (layout === 'openai') {
      out.set(k, toTensor(src.read(k)));
      continue;
    }
    const m = /^(vision|text)_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$/.exec(k);
    if (m) {
      const target = `${m[1] === 'vision' ? 'visual.' : ''}transformer.resblocks.${m[2]}.attn.in_proj_${m[4]}`;
      const slot = qkv.get(target) ?? {};
      slot[m[3] as 'q' | 'k' | 'v'] = toTensor(src.read(k));
      qkv.set(target, slot);
      continue;
    }
    const o = hfToOpenAIKey(k);
    const t = toTensor(src.read(k));
    if (o === 'visual.proj' || o === 'text_projection') {
      out.set(o, tf.transpose(t));
      t.dispose();
    } else out.set(o ?? k, t);
  }
  for (const [target, s] of qkv) {
    if (s.q && s.k && s.v) out.set(target, tf.concat([s.q, s.k, s.v], 0));
    else out.set(`${target} (incomplete q/k/v: has ${Object.keys(s).join(',')})`, tf.zeros([0]));
    for (const t of Object.values(s)) t?.dispose();
  }
  return out;
}

/** Load weights into a model; every problem is reported at once (LoadError). */
export function loadClipWeights(model: ClipModel, src: TensorSource, layout?: ClipLayout): void {
  const tensors = clipTensors(src, layout);
  try {
    model.load(tensors, {
      where: src.path,
      transform: (p, t) => {
        if (p !== 'logit_scale') return t;
        const r = t.reshape([]);
        t.dispose();
        return r;
      },
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/**
 * Load a CLIP model from a directory: `config.json` (HF, OpenAI or dpad layout) plus
 * model.safetensors / weights.safetensors / pytorch_model.bin, or a file with an explicit config.
 */
export function loadClip(dirOrFile: string, config?: ClipConfig): ClipModel {
  const isDir = fs.statSync(dirOrFile).isDirectory();
  let cfg = config;
  if (!cfg) {
    const cfgFile = path.join(isDir ? dirOrFile : path.dirname(dirOrFile), 'config.json');
    if (!fs.existsSync(cfgFile)) throw new Error(`${cfgFile}: no config.json beside the CLIP weights (pass a config)`);
    cfg = clipConfigFrom(JSON.parse(fs.readFileSync(cfgFile, 'utf8')), cfgFile);
  }
  const c = cfg;
  return loadModel(dirOrFile, () => new ClipModel(c), loadClipWeights);
}
