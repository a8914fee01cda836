/** SAM2 image-path configuration, in the field names of the official hydra configs; defaults are the official values. */

export interface HieraConfig {
  embed_dim: number;
  num_heads: number;
  stages: number[];
  global_att_blocks: number[];
  window_pos_embed_bkg_spatial_size: [number, number];
  window_spec: number[];
  q_pool?: number;
  q_stride?: [number, number];
  dim_mul?: number;
  head_mul?: number;
}

export interface NeckConfig {
  d_model: number;
  backbone_channel_list: number[];
  fpn_top_down_levels: number[];
  fpn_interp_model: 'nearest' | 'bilinear';
  scalp: number;
}

export interface SamHeadConfig {
  use_high_res_features_in_sam: boolean;
  iou_prediction_use_sigmoid: boolean;
  pred_obj_scores: boolean;
  pred_obj_scores_mlp: boolean;
  directly_add_no_mem_embed: boolean;
  dynamic_multimask_via_stability: boolean;
  dynamic_multimask_stability_delta: number;
  dynamic_multimask_stability_thresh: number;
  two_way_transformer: { depth: number; mlp_dim: number; num_heads: number };
  mask_threshold: number;
  mask_in_chans?: number;
  iou_head_hidden_dim?: number;
}

export interface Sam2Config {
  image_size: number;
  trunk: HieraConfig;
  neck: NeckConfig;
  sam: SamHeadConfig;
}

const SAM: SamHeadConfig = {
  use_high_res_features_in_sam: true, iou_prediction_use_sigmoid: true, pred_obj_scores: true, pred_obj_scores_mlp: true,
  directly_add_no_mem_embed: true, dynamic_multimask_via_stability: true, dynamic_multimask_stability_delta: 0.05,
  dynamic_multimask_stability_thresh: 0.98, two_way_transformer: { depth: 2, mlp_dim: 2048, num_heads: 8 }, mask_threshold: 0,
  mask_in_chans: 16, iou_head_hidden_dim: 256,
};

const neck = (channels: number[]): NeckConfig => ({ d_model: 256, backbone_channel_list: channels, fpn_top_down_levels: [2, 3], fpn_interp_model: 'nearest', scalp: 1 });

export const SAM2_HIERA_T: Sam2Config = {
  image_size: 1024,
  trunk: { embed_dim: 96, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 14, 7] },
  neck: neck([768, 384, 192, 96]), sam: SAM,
};
export const SAM2_HIERA_S: Sam2Config = {
  ...SAM2_HIERA_T,
  trunk: { ...SAM2_HIERA_T.trunk, stages: [1, 2, 11, 2], global_att_blocks: [7, 10, 13] },
};
export const SAM2_HIERA_B_PLUS: Sam2Config = {
  image_size: 1024,
  trunk: { embed_dim: 112, num_heads: 2, stages: [2, 3, 16, 3], global_att_blocks: [12, 16, 20], window_pos_embed_bkg_spatial_size: [14, 14], window_spec: [8, 4, 14, 7] },
  neck: neck([896, 448, 224, 112]), sam: SAM,
};
export const SAM2_HIERA_L: Sam2Config = {
  image_size: 1024,
  trunk: { embed_dim: 144, num_heads: 2, stages: [2, 6, 36, 4], global_att_blocks: [23, 33, 43], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 16, 8] },
  neck: neck([1152, 576, 288, 144]), sam: SAM,
};
/** SAM2.1 checkpoints share the image path of SAM2 (the changes are in the video memory modules). */
export const SAM2_1_HIERA_T = SAM2_HIERA_T;
export const SAM2_1_HIERA_S = SAM2_HIERA_S;
export const SAM2_1_HIERA_B_PLUS = SAM2_HIERA_B_PLUS;
export const SAM2_1_HIERA_L = SAM2_HIERA_L;

export const SAM2_CONFIGS: Record<string, Sam2Config> = {
  'sam2_hiera_t': SAM2_HIERA_T, 'sam2_hiera_s': SAM2_HIERA_S, 'sam2_hiera_b+': SAM2_HIERA_B_PLUS, 'sam2_hiera_l': SAM2_HIERA_L,
  'sam2.1_hiera_t': SAM2_1_HIERA_T, 'sam2.1_hiera_s': SAM2_1_HIERA_S, 'sam2.1_hiera_b+': SAM2_1_HIERA_B_PLUS, 'sam2.1_hiera_l': SAM2_1_HIERA_L,
};

/** Fill a partial config (e.g. a fixture's) with the official defaults. */
export function sam2ConfigFrom(raw: Record<string, unknown>, where = 'config'): Sam2Config {
  const r = raw as Partial<Sam2Config>;
  if (typeof r.image_size !== 'number' || !r.trunk || !r.neck) throw new Error(`${where}: a SAM2 config needs image_size, trunk and neck`);
  const c: Sam2Config = {
    image_size: r.image_size,
    trunk: { ...SAM2_HIERA_B_PLUS.trunk, ...r.trunk },
    neck: { ...SAM2_HIERA_B_PLUS.neck, ...r.neck },
    sam: { ...SAM, ...(r.sam ?? {}), two_way_transformer: { ...SAM.two_way_transformer, ...(r.sam?.two_way_transformer ?? {}) } },
  };
  if (c.image_size % 32) throw new Error(`${where}: image_size ${c.image_size} must be a multiple of 32`);
  if (c.trunk.stages.length !== c.trunk.window_spec.length) throw new Error(`${where}: trunk.stages and trunk.window_spec differ in length`);
  return c;
}
