/**
 * SAM2 checkpoints: the official `.pt` ({"model": state_dict}) or safetensors with the same keys.
 * The image path loads strictly; the video-only modules (memory attention/encoder, object
 * pointers, temporal encodings) are ignored by name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../../io/checkpoint.ts';
import type { TensorSource } from '../../io/source.ts';
import type { LoadReport } from '../../nn/module.ts';
import { readSam2Config, SAM2_CONFIGS, type Sam2Config } from './config.ts';
import { Sam2Image } from './model.ts';

const VIDEO_ONLY = /^(memory_attention|memory_encoder|obj_ptr_proj|obj_ptr_tpos_proj|mask_downsample|maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|no_obj_embed_spatial|sam_mask_decoder\.pred_obj_score_head_unused)\b|^image_encoder\.neck\.position_encoding/;

export function isVideoOnlyKey(k: string): boolean {
  return VIDEO_ONLY.test(k);
}

export function loadSam2Weights(model: Sam2Image, src: TensorSource): LoadReport {
  const t = model.config.trunk;
  return model.load(src, {
    ignore: isVideoOnlyKey,
    where: `${src.path} (loaded as hiera embed_dim ${t.embed_dim}, stages [${t.stages}]: is it a checkpoint of this size?)`,
  });
}

/** Guess a config from a checkpoint's file name: sam2_hiera_large.pt, sam2.1_hiera_b+.pt, ... */
export function configForCheckpoint(file: string): Sam2Config | null {
  const b = path.basename(file).toLowerCase().replace('base_plus', 'b+').replace('large', 'l').replace('small', 's').replace('tiny', 't');
  for (const [k, c] of Object.entries(SAM2_CONFIGS)) if (b.startsWith(k)) return c;
  return null;
}

/** What the weight shapes tell of the image encoder: hiera width, blocks per stage, FPN width, pos-embed grid. */
export function shapesOfWeights(src: TensorSource): { embed_dim: number; stages: number[]; d_model: number; bkg: number[] } | null {
  const pe = 'image_encoder.trunk.patch_embed.proj.weight';
  const neck = 'image_encoder.neck.convs.0.conv.weight';
  const pos = 'image_encoder.trunk.pos_embed';
  if (!src.has(pe) || !src.has(neck) || !src.has(pos)) return null;
  let depth = 0;
  for (const k of src.keys()) {
    const m = /^image_encoder\.trunk\.blocks\.(\d+)\./.exec(k);
    if (m) depth = Math.max(depth, Number(m[1]) + 1);
  }
  // the first block of every later stage changes width, so it alone has a `proj`
  const stages: number[] = [];
  let start = 0;
  for (let i = 1; i <= depth; i++) {
    if (i === depth || src.has(`image_encoder.trunk.blocks.${i}.proj.weight`)) {
      stages.push(i - start);
      start = i;
    }
  }
  return { embed_dim: src.meta(pe).shape[0], stages, d_model: src.meta(neck).shape[0], bkg: src.meta(pos).shape.slice(2) };
}

/**
 * The released model size whose image encoder has these weight shapes (SAM2 and SAM2.1 share it), or
 * null. Heads, window sizes and global-attention blocks leave no trace in the shapes, so only the
 * released sizes can be recognised.
 */
export function configForWeights(src: TensorSource): Sam2Config | null {
  const s = shapesOfWeights(src);
  if (!s) return null;
  for (const c of Object.values(SAM2_CONFIGS)) {
    if (c.trunk.embed_dim === s.embed_dim && c.trunk.stages.join() === s.stages.join() && c.neck.d_model === s.d_model && c.trunk.window_pos_embed_bkg_spatial_size.join() === s.bkg.join()) return c;
  }
  return null;
}

/** A config for a checkpoint: read off its weight shapes, else guessed from its file name; an error names both tries. */
export function configFor(src: TensorSource, file: string): Sam2Config {
  const c = configForWeights(src) ?? configForCheckpoint(file);
  if (c) return c;
  const s = shapesOfWeights(src);
  const seen = s ? `hiera embed_dim ${s.embed_dim}, stages [${s.stages}], neck d_model ${s.d_model}` : 'no SAM2 image-encoder weights';
  throw new Error(`${file}: cannot tell the model size: the weights (${seen}) match no released SAM2 size and the file name none either; pass a config (the hydra .yaml it was built from)`);
}

/** Load from a directory (config.json / config.yaml + weights) or a checkpoint file (config from its weights or name unless given). */
export function loadSam2(p: string, config?: Sam2Config): Sam2Image {
  let cfg = config;
  let file = p;
  if (fs.statSync(p).isDirectory()) {
    const cf = ['config.json', 'config.yaml', 'config.yml'].map(f => path.join(p, f)).find(f => fs.existsSync(f));
    if (!cfg && cf) cfg = readSam2Config(cf);
    const cands = ['model.safetensors', 'weights.safetensors', 'weights.pt', ...fs.readdirSync(p).filter(f => f.endsWith('.pt'))];
    const found = cands.find(f => fs.existsSync(path.join(p, f)));
    if (!found) throw new Error(`${p}: no SAM2 weights (model.safetensors or a .pt)`);
    file = path.join(p, found);
  }
  const src = openCheckpoint(file);
  try {
    const model = new Sam2Image(cfg ?? configFor(src, file));
    try {
      loadSam2Weights(model, src);
      return model;
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    src.close();
  }
}
