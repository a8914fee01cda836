/**
 * SAM2 checkpoints: the official `.pt` ({"model": state_dict}) or safetensors with the same keys.
 * The image path loads strictly; the video-only modules (memory attention/encoder, object
 * pointers, temporal encodings) are ignored by name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../io/checkpoint.ts';
import type { TensorSource } from '../../io/source.ts';
import type { LoadReport } from '../../nn/module.ts';
import { sam2ConfigFrom, SAM2_CONFIGS, type Sam2Config } from './config.ts';
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

/** Load from a directory (config.json + weights) or a checkpoint file (config from its name unless given). */
export function loadSam2(p: string, config?: Sam2Config): Sam2Image {
  let cfg = config;
  let file = p;
  if (fs.statSync(p).isDirectory()) {
    const cf = path.join(p, 'config.json');
    if (!cfg && fs.existsSync(cf)) cfg = sam2ConfigFrom(JSON.parse(fs.readFileSync(cf, 'utf8')), cf);
    const cands = ['model.safetensors', 'weights.safetensors', 'weights.pt', ...fs.readdirSync(p).filter(f => f.endsWith('.pt'))];
    const found = cands.find(f => fs.existsSync(path.join(p, f)));
    if (!found) throw new Error(`${p}: no SAM2 weights (model.safetensors or a .pt)`);
    file = path.join(p, found);
  }
  cfg ??= configForCheckpoint(file) ?? undefined;
  if (!cfg) throw new Error(`${file}: cannot tell the model size from the name; pass a config`);
  const c = cfg;
  return loadModel(file, () => new Sam2Image(c), loadSam2Weights);
}
