/**
 * SAM2 image-path configuration. `sam2ConfigFrom` reads the official hydra tree (configs/sam2/*.yaml,
 * configs/sam2.1/*.yaml: `model.image_encoder.trunk / neck / scalp`, `image_size`,
 * `sam_mask_decoder_extra_args`, ...) as well as this project's flat form ({image_size, trunk, neck, sam},
 * what convert writes). Missing fields take the official constructors' defaults (Hiera, FpnNeck,
 * ImageEncoder, SAM2Base, MaskDecoder); fields only the video path uses are accepted and ignored;
 * an invalid value of a field the image path uses is an error naming that field.
 */
import * as fs from 'node:fs';
import { parseYaml } from './yaml.ts';

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
  fpn_interp_model: 'nearest' | 'bilinear' | 'bicubic';
  /** ImageEncoder.scalp: how many of the lowest-resolution FPN levels are dropped */
  scalp: number;
  /** 'avg' halves each top-down sum */
  fuse_type?: 'sum' | 'avg';
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
  /** SAM2ImagePredictor.mask_threshold */
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

/** The heads as the released checkpoints are built (all configs + build_sam2's image post-processing). */
const SAM: SamHeadConfig = {
  use_high_res_features_in_sam: true, iou_prediction_use_sigmoid: true, pred_obj_scores: true, pred_obj_scores_mlp: true,
  directly_add_no_mem_embed: true, dynamic_multimask_via_stability: true, dynamic_multimask_stability_delta: 0.05,
  dynamic_multimask_stability_thresh: 0.98, two_way_transformer: { depth: 2, mlp_dim: 2048, num_heads: 8 }, mask_threshold: 0,
  mask_in_chans: 16, iou_head_hidden_dim: 256,
};

/** Hiera's constructor defaults (hieradet.py) */
const HIERA_DEFAULTS: HieraConfig = {
  embed_dim: 96, num_heads: 1, stages: [2, 3, 16, 3], global_att_blocks: [12, 16, 20], window_pos_embed_bkg_spatial_size: [14, 14],
  window_spec: [8, 4, 14, 7], q_pool: 3, q_stride: [2, 2], dim_mul: 2, head_mul: 2,
};

const neck = (channels: number[]): NeckConfig => ({ d_model: 256, backbone_channel_list: channels, fpn_top_down_levels: [2, 3], fpn_interp_model: 'nearest', scalp: 1 });
const trunk = (t: Partial<HieraConfig>): HieraConfig => ({ ...HIERA_DEFAULTS, ...t });

export const SAM2_HIERA_T: Sam2Config = {
  image_size: 1024,
  trunk: trunk({ embed_dim: 96, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9], window_pos_embed_bkg_spatial_size: [7, 7] }),
  neck: neck([768, 384, 192, 96]), sam: SAM,
};
export const SAM2_HIERA_S: Sam2Config = { ...SAM2_HIERA_T, trunk: { ...SAM2_HIERA_T.trunk, stages: [1, 2, 11, 2], global_att_blocks: [7, 10, 13] } };
export const SAM2_HIERA_B_PLUS: Sam2Config = { image_size: 1024, trunk: trunk({ embed_dim: 112, num_heads: 2 }), neck: neck([896, 448, 224, 112]), sam: SAM };
export const SAM2_HIERA_L: Sam2Config = {
  image_size: 1024,
  trunk: trunk({ embed_dim: 144, num_heads: 2, stages: [2, 6, 36, 4], global_att_blocks: [23, 33, 43], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 16, 8] }),
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

export interface Sam2ConfigOptions {
  /**
   * build_sam2's apply_postprocessing (default true): a hydra tree without
   * sam_mask_decoder_extra_args gets dynamic_multimask_via_stability true, delta 0.05, thresh 0.98,
   * as build_sam2 adds them for images. Values written in the tree are kept as they are.
   */
  applyPostprocessing?: boolean;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/** Typed field readers: each error names `where` and the field's dotted path. */
class Fields {
  readonly o: Obj;
  readonly path: string;
  readonly where: string;
  constructor(o: Obj, path: string, where: string) {
    this.o = o;
    this.path = path;
    this.where = where;
  }
  private bad(k: string, want: string): never {
    throw new Error(`${this.where}: ${this.path}${k}: expected ${want}, got ${show(this.o[k])}`);
  }
  has(k: string): boolean {
    return this.o[k] !== undefined;
  }
  int(k: string, def: number | undefined, min = 0): number {
    const v = this.o[k] ?? def;
    if (v === undefined) throw new Error(`${this.where}: ${this.path}${k} is missing`);
    if (!Number.isInteger(v) || (v as number) < min) this.bad(k, `an integer >= ${min}`);
    return v as number;
  }
  num(k: string, def: number): number {
    const v = this.o[k] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.bad(k, 'a number');
    return v as number;
  }
  bool(k: string, def: boolean): boolean {
    const v = this.o[k] ?? def;
    if (typeof v !== 'boolean') this.bad(k, 'true or false');
    return v as boolean;
  }
  ints(k: string, def: number[] | undefined, len?: number, min = 0): number[] {
    const v = this.o[k] ?? def;
    if (v === undefined) throw new Error(`${this.where}: ${this.path}${k} is missing`);
    if (!Array.isArray(v) || v.some(x => !Number.isInteger(x) || x < min) || (len !== undefined && v.length !== len)) this.bad(k, `a list of ${len ?? ''}${len ? ' ' : ''}integers >= ${min}`);
    return [...(v as number[])];
  }
  oneOf<T extends string>(k: string, def: T, allowed: readonly T[]): T {
    const v = this.o[k] ?? def;
    if (!allowed.includes(v as T)) this.bad(k, `one of ${allowed.map(a => `'${a}'`).join(', ')} (others are not supported)`);
    return v as T;
  }
  /** a constructor argument that only has one supported value */
  fixed(k: string, value: unknown): void {
    if (this.o[k] !== undefined && show(this.o[k]) !== show(value)) this.bad(k, `${show(value)} (the only value supported)`);
  }
  target(...suffixes: string[]): void {
    const t = this.o._target_;
    if (t !== undefined && (typeof t !== 'string' || !suffixes.some(s => t.endsWith(s)))) this.bad('_target_', `${suffixes.join(' or ')} (the image path supports no other)`);
  }
  sub(k: string, required: boolean): Fields {
    const v = this.o[k];
    if (v === undefined || v === null) {
      if (required) throw new Error(`${this.where}: ${this.path}${k} is missing`);
      return new Fields({}, `${this.path}${k}.`, this.where);
    }
    if (!isObj(v)) this.bad(k, 'a mapping');
    return new Fields(v as Obj, `${this.path}${k}.`, this.where);
  }
  only(keys: readonly string[]): void {
    for (const k of Object.keys(this.o)) if (!keys.includes(k)) throw new Error(`${this.where}: ${this.path}${k}: unknown field (known: ${keys.join(', ')})`);
  }
}

const TRUNK_KEYS = ['_target_', 'embed_dim', 'num_heads', 'drop_path_rate', 'q_pool', 'q_stride', 'stages', 'dim_mul', 'head_mul', 'window_pos_embed_bkg_spatial_size', 'window_spec', 'global_att_blocks', 'weights_path', 'return_interm_layers'];
const NECK_KEYS = ['_target_', 'position_encoding', 'd_model', 'backbone_channel_list', 'kernel_size', 'stride', 'padding', 'fpn_interp_model', 'fuse_type', 'fpn_top_down_levels', 'scalp'];
const EXTRA_KEYS = ['dynamic_multimask_via_stability', 'dynamic_multimask_stability_delta', 'dynamic_multimask_stability_thresh'];

function readTrunk(f: Fields): HieraConfig {
  f.only(TRUNK_KEYS);
  f.target('hieradet.Hiera');
  f.fixed('return_interm_layers', true);
  f.fixed('q_stride', [2, 2]);
  if (f.has('drop_path_rate')) f.num('drop_path_rate', 0); // stochastic depth: training only
  const stages = f.ints('stages', HIERA_DEFAULTS.stages, undefined, 1);
  const t: HieraConfig = {
    embed_dim: f.int('embed_dim', HIERA_DEFAULTS.embed_dim, 1),
    num_heads: f.int('num_heads', HIERA_DEFAULTS.num_heads, 1),
    stages,
    global_att_blocks: f.o.global_att_blocks === null ? [] : f.ints('global_att_blocks', HIERA_DEFAULTS.global_att_blocks),
    window_pos_embed_bkg_spatial_size: f.ints('window_pos_embed_bkg_spatial_size', HIERA_DEFAULTS.window_pos_embed_bkg_spatial_size, 2, 1) as [number, number],
    window_spec: f.ints('window_spec', HIERA_DEFAULTS.window_spec, stages.length),
    q_pool: f.int('q_pool', 3),
    q_stride: [2, 2],
    dim_mul: f.num('dim_mul', 2),
    head_mul: f.num('head_mul', 2),
  };
  if (t.q_pool! > stages.length - 1) throw new Error(`${f.where}: ${f.path}q_pool: ${t.q_pool} exceeds the ${stages.length - 1} stage transitions`);
  if (t.window_spec[0] < 1) throw new Error(`${f.where}: ${f.path}window_spec: the first stage needs a window >= 1`);
  return t;
}

function readNeck(f: Fields, scalp: number): NeckConfig {
  f.only(NECK_KEYS);
  f.target('image_encoder.FpnNeck');
  f.fixed('kernel_size', 1);
  f.fixed('stride', 1);
  f.fixed('padding', 0);
  const channels = f.ints('backbone_channel_list', undefined, undefined, 1);
  const levels = f.o.fpn_top_down_levels === null || f.o.fpn_top_down_levels === undefined ? channels.map((_, i) => i) : f.ints('fpn_top_down_levels', undefined);
  const n: NeckConfig = {
    d_model: f.int('d_model', undefined, 1),
    backbone_channel_list: channels,
    fpn_top_down_levels: levels,
    fpn_interp_model: f.oneOf('fpn_interp_model', 'bilinear', ['nearest', 'bilinear', 'bicubic'] as const),
    scalp,
    fuse_type: f.oneOf('fuse_type', 'sum', ['sum', 'avg'] as const),
  };
  if (n.d_model % 16) throw new Error(`${f.where}: ${f.path}d_model: ${n.d_model} must be a multiple of 16 (8 attention heads over d_model / 2)`);
  if (scalp >= channels.length) throw new Error(`${f.where}: scalp ${scalp} drops every one of the ${channels.length} FPN levels`);
  return n;
}

function check(c: Sam2Config, where: string, prefix: string): Sam2Config {
  if (c.image_size % 32) throw new Error(`${where}: ${prefix}image_size ${c.image_size} must be a multiple of 32`);
  const kept = c.neck.backbone_channel_list.length - c.neck.scalp;
  // SAM2Base takes the last 3 levels with high-res features (conv_s0 / conv_s1 on levels 0 and 1), else the last one
  if (c.sam.use_high_res_features_in_sam && kept !== 3) throw new Error(`${where}: ${kept} FPN level(s) after scalp ${c.neck.scalp}, but use_high_res_features_in_sam needs exactly 3`);
  return c;
}

/** The `model` node of an official hydra config (or the whole tree holding it) -> Sam2Config. */
export function sam2ConfigFromHydra(tree: Obj, where = 'config', opts: Sam2ConfigOptions = {}): Sam2Config {
  const root = isObj(tree.model) ? new Fields(tree.model, 'model.', where) : new Fields(tree, '', where);
  if (!isObj(root.o.image_encoder)) throw new Error(`${where}: ${root.path}image_encoder is missing: not a SAM2 hydra config`);
  root.target('SAM2Base', 'SAM2VideoPredictor', 'SAM2VideoPredictorVOS', 'SAM2Train');
  root.fixed('backbone_stride', 16);
  const enc = root.sub('image_encoder', true);
  enc.only(['_target_', 'trunk', 'neck', 'scalp', 'compile_image_encoder']);
  enc.target('image_encoder.ImageEncoder');
  const extra = root.sub('sam_mask_decoder_extra_args', false);
  extra.only(EXTRA_KEYS);
  const post = opts.applyPostprocessing ?? true;
  const c: Sam2Config = {
    image_size: root.int('image_size', 512, 1),
    trunk: readTrunk(enc.sub('trunk', true)),
    neck: readNeck(enc.sub('neck', true), enc.int('scalp', 0)),
    sam: {
      ...SAM,
      use_high_res_features_in_sam: root.bool('use_high_res_features_in_sam', false),
      iou_prediction_use_sigmoid: root.bool('iou_prediction_use_sigmoid', false),
      pred_obj_scores: root.bool('pred_obj_scores', false),
      pred_obj_scores_mlp: root.bool('pred_obj_scores_mlp', false),
      directly_add_no_mem_embed: root.bool('directly_add_no_mem_embed', false),
      dynamic_multimask_via_stability: extra.bool('dynamic_multimask_via_stability', post),
      dynamic_multimask_stability_delta: extra.num('dynamic_multimask_stability_delta', 0.05),
      dynamic_multimask_stability_thresh: extra.num('dynamic_multimask_stability_thresh', 0.98),
    },
  };
  return check(c, where, root.path);
}

/** This project's flat form ({image_size, trunk, neck (scalp inside), sam}, as convert writes it). */
function sam2ConfigFromFlat(raw: Obj, where: string): Sam2Config {
  const root = new Fields(raw, '', where);
  root.only(['model_type', 'image_size', 'trunk', 'neck', 'sam']);
  const nf = root.sub('neck', true);
  const s = root.sub('sam', false);
  const tw = s.sub('two_way_transformer', false);
  const c: Sam2Config = {
    image_size: root.int('image_size', undefined, 1),
    trunk: readTrunk(root.sub('trunk', true)),
    neck: readNeck(nf, nf.int('scalp', 0)),
    sam: {
      use_high_res_features_in_sam: s.bool('use_high_res_features_in_sam', SAM.use_high_res_features_in_sam),
      iou_prediction_use_sigmoid: s.bool('iou_prediction_use_sigmoid', SAM.iou_prediction_use_sigmoid),
      pred_obj_scores: s.bool('pred_obj_scores', SAM.pred_obj_scores),
      pred_obj_scores_mlp: s.bool('pred_obj_scores_mlp', SAM.pred_obj_scores_mlp),
      directly_add_no_mem_embed: s.bool('directly_add_no_mem_embed', SAM.directly_add_no_mem_embed),
      dynamic_multimask_via_stability: s.bool('dynamic_multimask_via_stability', SAM.dynamic_multimask_via_stability),
      dynamic_multimask_stability_delta: s.num('dynamic_multimask_stability_delta', SAM.dynamic_multimask_stability_delta),
      dynamic_multimask_stability_thresh: s.num('dynamic_multimask_stability_thresh', SAM.dynamic_multimask_stability_thresh),
      two_way_transformer: { depth: tw.int('depth', 2, 1), mlp_dim: tw.int('mlp_dim', 2048, 1), num_heads: tw.int('num_heads', 8, 1) },
      mask_threshold: s.num('mask_threshold', 0),
      mask_in_chans: s.int('mask_in_chans', 16, 4),
      iou_head_hidden_dim: s.int('iou_head_hidden_dim', 256, 1),
    },
  };
  s.only(Object.keys(c.sam));
  tw.only(['depth', 'mlp_dim', 'num_heads']);
  return check(c, where, '');
}

/**
 * A config object -> Sam2Config: the official hydra tree (the parsed yaml, its `model` node, or a
 * fixture's {base, overrides, model, constants}) or the project's flat form.
 */
export function sam2ConfigFrom(raw: unknown, where = 'config', opts: Sam2ConfigOptions = {}): Sam2Config {
  if (!isObj(raw)) throw new Error(`${where}: a SAM2 config must be a mapping, got ${show(raw)}`);
  if (isObj(raw.model) || isObj(raw.image_encoder)) return sam2ConfigFromHydra(raw, where, opts);
  if (isObj(raw.trunk) || isObj(raw.neck)) return sam2ConfigFromFlat(raw, where);
  throw new Error(`${where}: not a SAM2 config: expected the hydra tree (model.image_encoder.trunk / neck, as in sam2's configs/*.yaml) or the flat {image_size, trunk, neck}`);
}

/** Read a config file: an official hydra .yaml, or .json (hydra tree or flat form). */
export function readSam2Config(file: string, opts: Sam2ConfigOptions = {}): Sam2Config {
  const text = fs.readFileSync(file, 'utf8');
  let raw: unknown;
  if (/\.ya?ml$/i.test(file)) raw = parseYaml(text, file);
  else {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
    }
  }
  return sam2ConfigFrom(raw, file, opts);
}
