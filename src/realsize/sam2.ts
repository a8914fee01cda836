/**
 * SAM 2 / SAM 2.1 checkpoints as facebookresearch/sam2 releases them: `{"model": state_dict}` of
 * SAM2Base saved by torch.save, F32, with the video-path modules (memory attention, memory
 * encoder, object pointers, temporal encodings) beside the image path. The key set follows
 * SAM2Base's module tree in state-dict order (a module's own parameters, then its children in
 * registration order); 2.1 adds `no_obj_embed_spatial` and `obj_ptr_tpos_proj`.
 */
import type { Sam2Config } from '../models/sam2/config.ts';
import { SAM2_HIERA_L } from '../models/sam2/config.ts';
import { writeTorchCheckpoint } from '../io/torch_write.ts';
import { lazyTensor, totalBytes, type TensorPlan } from './layout.ts';
import { normal, ONES, ZEROS, constant, type Init } from './random.ts';

/** The video-path sizes of a SAM2Base (the hydra config's memory_attention / memory_encoder nodes). */
export interface Sam2VideoConfig {
  version: '2.0' | '2.1';
  num_maskmem: number;
  /** memory_encoder.out_dim (mem_dim) */
  mem_dim: number;
  /** memory_encoder.in_dim */
  mem_in_dim: number;
  mask_downsampler: { embed_dim: number; kernel_size: number; stride: number; total_stride: number };
  fuser: { dim: number; kernel_size: number; num_layers: number; layer_scale_init_value: number };
  memory_attention: { d_model: number; num_layers: number; dim_feedforward: number; kv_in_dim: number };
  use_mlp_for_obj_ptr_proj: boolean;
}

/** sam2_hiera_l.yaml / sam2.1_hiera_l.yaml (configs/sam2, configs/sam2.1) */
export const SAM2_L_VIDEO: Sam2VideoConfig = {
  version: '2.0', num_maskmem: 7, mem_dim: 64, mem_in_dim: 256,
  mask_downsampler: { embed_dim: 256, kernel_size: 3, stride: 2, total_stride: 16 },
  fuser: { dim: 256, kernel_size: 7, num_layers: 2, layer_scale_init_value: 1e-6 },
  memory_attention: { d_model: 256, num_layers: 4, dim_feedforward: 2048, kv_in_dim: 64 },
  use_mlp_for_obj_ptr_proj: true,
};
export const SAM2_1_L_VIDEO: Sam2VideoConfig = { ...SAM2_L_VIDEO, version: '2.1' };

type Obj = Record<string, unknown>;
const sub = (o: unknown, k: string): Obj => ((o as Obj | undefined)?.[k] ?? {}) as Obj;
const num = (o: Obj, k: string, d: number): number => (typeof o[k] === 'number' ? (o[k] as number) : d);

/**
 * The video sizes of a hydra `model` node (an official configs/*.yaml tree, parsed); fields it
 * leaves out take the constructors' defaults. 2.1 is told by `no_obj_embed_spatial`.
 */
export function sam2VideoFromHydra(model: Obj): Sam2VideoConfig {
  const me = sub(model, 'memory_encoder');
  const md = sub(me, 'mask_downsampler');
  const fu = sub(me, 'fuser');
  const fl = sub(fu, 'layer');
  const ma = sub(model, 'memory_attention');
  const layer = sub(ma, 'layer');
  const cross = sub(layer, 'cross_attention');
  return {
    version: model.no_obj_embed_spatial === true ? '2.1' : '2.0',
    num_maskmem: num(model, 'num_maskmem', 7),
    mem_dim: num(me, 'out_dim', 64),
    mem_in_dim: num(me, 'in_dim', 256),
    mask_downsampler: { embed_dim: num(md, 'embed_dim', 256), kernel_size: num(md, 'kernel_size', 4), stride: num(md, 'stride', 4), total_stride: num(md, 'total_stride', 16) },
    fuser: { dim: num(fl, 'dim', 256), kernel_size: num(fl, 'kernel_size', 7), num_layers: num(fu, 'num_layers', 2), layer_scale_init_value: num(fl, 'layer_scale_init_value', 1e-6) },
    memory_attention: { d_model: num(ma, 'd_model', 256), num_layers: num(ma, 'num_layers', 4), dim_feedforward: num(layer, 'dim_feedforward', 2048), kv_in_dim: num(cross, 'kv_in_dim', num(layer, 'd_model', 256)) },
    use_mlp_for_obj_ptr_proj: model.use_mlp_for_obj_ptr_proj !== false,
  };
}

/** Every tensor of the SAM2Base state dict for an image config and a video config, in state-dict order. */
export function sam2Tensors(cfg: Sam2Config, video: Sam2VideoConfig): TensorPlan[] {
  const out: TensorPlan[] = [];
  const add = (key: string, shape: number[], init: Init) => out.push({ key, dtype: 'F32', shape, init });
  const w = normal(0.02);
  const linear = (p: string, o: number, i: number) => { add(`${p}.weight`, [o, i], w); add(`${p}.bias`, [o], w); };
  const conv = (p: string, o: number, i: number, k: number) => { add(`${p}.weight`, [o, i, k, k], w); add(`${p}.bias`, [o], w); };
  const norm = (p: string, c: number) => { add(`${p}.weight`, [c], ONES); add(`${p}.bias`, [c], ZEROS); };
  const mlp = (p: string, i: number, h: number, o: number, layers: number) => {
    for (let l = 0; l < layers; l++) linear(`${p}.layers.${l}`, l === layers - 1 ? o : h, l === 0 ? i : h);
  };
  const attention = (p: string, e: number, internal: number, kv = e) => {
    linear(`${p}.q_proj`, internal, e); linear(`${p}.k_proj`, internal, kv); linear(`${p}.v_proj`, internal, kv); linear(`${p}.out_proj`, e, internal);
  };
  const E = cfg.neck.d_model;
  const v21 = video.version === '2.1';
  // SAM2Base's own parameters
  add('maskmem_tpos_enc', [video.num_maskmem, 1, 1, video.mem_dim], w);
  add('no_mem_embed', [1, 1, E], w);
  add('no_mem_pos_enc', [1, 1, E], w);
  if (cfg.sam.pred_obj_scores) add('no_obj_ptr', [1, E], w);
  if (v21) add('no_obj_embed_spatial', [1, video.mem_dim], w);
  // image_encoder.trunk (Hiera): own parameters, patch_embed, blocks
  const t = cfg.trunk;
  const C = t.embed_dim;
  add('image_encoder.trunk.pos_embed', [1, C, ...t.window_pos_embed_bkg_spatial_size], w);
  add('image_encoder.trunk.pos_embed_window', [1, C, t.window_spec[0], t.window_spec[0]], w);
  conv('image_encoder.trunk.patch_embed.proj', C, 3, 7);
  let dim = C;
  let block = 0;
  t.stages.forEach((n, s) => {
    const dimOut = Math.round(C * (t.dim_mul ?? 2) ** s);
    for (let j = 0; j < n; j++, block++) {
      const b = `image_encoder.trunk.blocks.${block}`;
      norm(`${b}.norm1`, dim);
      linear(`${b}.attn.qkv`, 3 * dimOut, dim);
      linear(`${b}.attn.proj`, dimOut, dimOut);
      norm(`${b}.norm2`, dimOut);
      mlp(`${b}.mlp`, dimOut, 4 * dimOut, dimOut, 2);
      if (dim !== dimOut) linear(`${b}.proj`, dimOut, dim);
      dim = dimOut;
    }
  });
  cfg.neck.backbone_channel_list.forEach((ch, i) => conv(`image_encoder.neck.convs.${i}.conv`, E, ch, 1));
  conv('mask_downsample', 1, 1, 4);
  // memory_attention
  const ma = video.memory_attention;
  for (let l = 0; l < ma.num_layers; l++) {
    const p = `memory_attention.layers.${l}`;
    attention(`${p}.self_attn`, ma.d_model, ma.d_model);
    attention(`${p}.cross_attn_image`, ma.d_model, ma.d_model, ma.kv_in_dim);
    linear(`${p}.linear1`, ma.dim_feedforward, ma.d_model);
    linear(`${p}.linear2`, ma.d_model, ma.dim_feedforward);
    for (const n of ['norm1', 'norm2', 'norm3']) norm(`${p}.${n}`, ma.d_model);
  }
  norm('memory_attention.norm', ma.d_model);
  // memory_encoder: mask_downsampler (conv, LayerNorm2d, GELU per stride step, then a 1x1 conv), pix_feat_proj, fuser, out_proj
  const md = video.mask_downsampler;
  const steps = Math.round(Math.log(md.total_stride) / Math.log(md.stride));
  let cin = 1;
  for (let i = 0; i < steps; i++) {
    const cout = cin * md.stride * md.stride;
    conv(`memory_encoder.mask_downsampler.encoder.${3 * i}`, cout, cin, md.kernel_size);
    norm(`memory_encoder.mask_downsampler.encoder.${3 * i + 1}`, cout);
    cin = cout;
  }
  conv(`memory_encoder.mask_downsampler.encoder.${3 * steps}`, md.embed_dim, cin, 1);
  conv('memory_encoder.pix_feat_proj', video.mem_in_dim, video.mem_in_dim, 1);
  const fu = video.fuser;
  for (let l = 0; l < fu.num_layers; l++) {
    const p = `memory_encoder.fuser.layers.${l}`;
    if (fu.layer_scale_init_value > 0) add(`${p}.gamma`, [fu.dim], constant(fu.layer_scale_init_value));
    add(`${p}.dwconv.weight`, [fu.dim, 1, fu.kernel_size, fu.kernel_size], w); add(`${p}.dwconv.bias`, [fu.dim], w);
    norm(`${p}.norm`, fu.dim);
    linear(`${p}.pwconv1`, 4 * fu.dim, fu.dim);
    linear(`${p}.pwconv2`, fu.dim, 4 * fu.dim);
  }
  if (video.mem_dim !== video.mem_in_dim) conv('memory_encoder.out_proj', video.mem_dim, video.mem_in_dim, 1);
  // sam_prompt_encoder
  const mic = cfg.sam.mask_in_chans ?? 16;
  add('sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix', [2, E / 2], normal(1));
  for (let i = 0; i < 4; i++) add(`sam_prompt_encoder.point_embeddings.${i}.weight`, [1, E], normal(1));
  add('sam_prompt_encoder.not_a_point_embed.weight', [1, E], normal(1));
  add('sam_prompt_encoder.mask_downscaling.0.weight', [mic / 4, 1, 2, 2], w); add('sam_prompt_encoder.mask_downscaling.0.bias', [mic / 4], w);
  norm('sam_prompt_encoder.mask_downscaling.1', mic / 4);
  add('sam_prompt_encoder.mask_downscaling.3.weight', [mic, mic / 4, 2, 2], w); add('sam_prompt_encoder.mask_downscaling.3.bias', [mic], w);
  norm('sam_prompt_encoder.mask_downscaling.4', mic);
  conv('sam_prompt_encoder.mask_downscaling.6', E, mic, 1);
  add('sam_prompt_encoder.no_mask_embed.weight', [1, E], normal(1));
  // sam_mask_decoder
  const tw = cfg.sam.two_way_transformer;
  for (let l = 0; l < tw.depth; l++) {
    const p = `sam_mask_decoder.transformer.layers.${l}`;
    attention(`${p}.self_attn`, E, E);
    norm(`${p}.norm1`, E);
    attention(`${p}.cross_attn_token_to_image`, E, E / 2);
    norm(`${p}.norm2`, E);
    mlp(`${p}.mlp`, E, tw.mlp_dim, E, 2);
    norm(`${p}.norm3`, E);
    norm(`${p}.norm4`, E);
    attention(`${p}.cross_attn_image_to_token`, E, E / 2);
  }
  attention('sam_mask_decoder.transformer.final_attn_token_to_image', E, E / 2);
  norm('sam_mask_decoder.transformer.norm_final_attn', E);
  add('sam_mask_decoder.iou_token.weight', [1, E], normal(1));
  add('sam_mask_decoder.mask_tokens.weight', [4, E], normal(1));
  if (cfg.sam.pred_obj_scores) add('sam_mask_decoder.obj_score_token.weight', [1, E], normal(1));
  add('sam_mask_decoder.output_upscaling.0.weight', [E, E / 4, 2, 2], w); add('sam_mask_decoder.output_upscaling.0.bias', [E / 4], w);
  norm('sam_mask_decoder.output_upscaling.1', E / 4);
  add('sam_mask_decoder.output_upscaling.3.weight', [E / 4, E / 8, 2, 2], w); add('sam_mask_decoder.output_upscaling.3.bias', [E / 8], w);
  if (cfg.sam.use_high_res_features_in_sam) { conv('sam_mask_decoder.conv_s0', E / 8, E, 1); conv('sam_mask_decoder.conv_s1', E / 4, E, 1); }
  for (let i = 0; i < 4; i++) mlp(`sam_mask_decoder.output_hypernetworks_mlps.${i}`, E, E, E / 8, 3);
  const ih = cfg.sam.iou_head_hidden_dim ?? 256;
  mlp('sam_mask_decoder.iou_prediction_head', E, ih, 4, 3);
  if (cfg.sam.pred_obj_scores) {
    if (cfg.sam.pred_obj_scores_mlp) mlp('sam_mask_decoder.pred_obj_score_head', E, E, 1, 3);
    else linear('sam_mask_decoder.pred_obj_score_head', 1, E);
  }
  // object pointers
  if (video.use_mlp_for_obj_ptr_proj) mlp('obj_ptr_proj', E, E, E, 3);
  else linear('obj_ptr_proj', E, E);
  if (v21) linear('obj_ptr_tpos_proj', video.mem_dim, E);
  return out;
}

/** The released hiera-large checkpoints: sam2_hiera_large.pt (2.0) and sam2.1_hiera_large.pt (2.1). */
export function sam2LargeTensors(version: '2.0' | '2.1'): TensorPlan[] {
  return sam2Tensors(SAM2_HIERA_L, version === '2.1' ? SAM2_1_L_VIDEO : SAM2_L_VIDEO);
}

/** Write `{"model": state_dict}` as torch.save does, one tensor in memory at a time; returns the file size. */
export function writeSam2Checkpoint(file: string, plans: readonly TensorPlan[], seed = 0): { tensors: number; bytes: number; fileBytes: number } {
  const fileBytes = writeTorchCheckpoint(file, plans.map(p => [p.key, lazyTensor(p, seed)]), { wrap: 'model' });
  return { tensors: plans.length, bytes: totalBytes(plans), fileBytes };
}
