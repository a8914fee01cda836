/**
 * Checkpoint layouts of CLIP and their mapping onto the model (OpenAI's state-dict names).
 * HF `CLIPModel` keys map one to one except q/k/v, which OpenAI fuses into in_proj, and the
 * two projections, which HF stores transposed as Linear weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel, openCheckpoint } from '../../io/checkpoint.ts';
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

/**
 * The configuration of an OpenAI-layout state dict, read off its shapes as openai/CLIP's
 * build_model does (ViT image towers only): widths from conv1 / ln_final, patch from conv1,
 * resolution = patch x round(sqrt(positions - 1)), layer counts from the resblock keys,
 * heads = width // 64, MLP 4 x width.
 */
export function clipConfigFromOpenAIWeights(src: TensorSource): ClipConfig {
  const keys = src.keys();
  const shape = (k: string): number[] => {
    if (!src.has(k)) throw new Error(`${src.path}: OpenAI CLIP weights lack '${k}', so the configuration cannot be read off them (pass a config)`);
    return src.meta(k).shape;
  };
  if (keys.some(k => k.startsWith('visual.layer1.'))) throw new Error(`${src.path}: a ModifiedResNet image tower (visual.layer1.*) is not supported; only ViT CLIP models are`);
  const conv = shape('visual.conv1.weight'); // [W, 3, P, P]
  const vw = conv[0];
  const patch = conv[conv.length - 1];
  const grid = Math.round(Math.sqrt(shape('visual.positional_embedding')[0] - 1));
  const tw = shape('ln_final.weight')[0];
  const count = (re: RegExp) => new Set(keys.flatMap(k => { const m = re.exec(k); return m ? [m[1]] : []; })).size;
  const heads = (w: number, what: string) => {
    const h = Math.floor(w / 64);
    if (h < 1) throw new Error(`${src.path}: ${what} width ${w} gives ${h} heads by build_model's width // 64 (pass a config)`);
    return h;
  };
  return {
    embed: shape('text_projection')[1],
    vision: { image: patch * grid, patch, width: vw, layers: count(/^visual\.transformer\.resblocks\.(\d+)\.attn\.in_proj_weight$/), heads: heads(vw, 'vision'), mlp: 4 * vw },
    text: { context: shape('positional_embedding')[0], vocab: shape('token_embedding.weight')[0], width: tw, layers: count(/^transformer\.resblocks\.(\d+)\./), heads: heads(tw, 'text'), mlp: 4 * tw },
    eps: 1e-5,
  };
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
 * The configuration of a CLIP checkpoint: `config` when given; else config.json beside the
 * weights (HF, OpenAI or dpad layout); else, for OpenAI-layout weights, read off the shapes.
 */
export function resolveClipConfig(dirOrFile: string, config?: ClipConfig | Record<string, unknown>): ClipConfig {
  if (config) return clipConfigFrom(config as Record<string, unknown>, 'config');
  if (!fs.existsSync(dirOrFile)) throw new Error(`${dirOrFile}: no such CLIP model directory or weights file`);
  const isDir = fs.statSync(dirOrFile).isDirectory();
  const cfgFile = path.join(isDir ? dirOrFile : path.dirname(dirOrFile), 'config.json');
  if (fs.existsSync(cfgFile)) return clipConfigFrom(JSON.parse(fs.readFileSync(cfgFile, 'utf8')), cfgFile);
  const src = openCheckpoint(dirOrFile);
  try {
    if (detectLayout(src) === 'hf') throw new Error(`${cfgFile}: no config.json beside the Hugging Face CLIP weights ${src.path} (pass a config)`);
    return clipConfigFromOpenAIWeights(src);
  } finally {
    src.close();
  }
}

/**
 * Load a CLIP model from a model directory (config.json + model.safetensors /
 * pytorch_model.bin / weights.safetensors) or a weights file; the configuration as
 * resolveClipConfig finds it.
 */
export function loadClip(dirOrFile: string, config?: ClipConfig | Record<string, unknown>): ClipModel {
  const c = resolveClipConfig(dirOrFile, config);
  return loadModel(dirOrFile, () => new ClipModel(c), loadClipWeights);
}
