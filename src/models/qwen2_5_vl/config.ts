/** Qwen2.5-VL configuration in the official field names; defaults are Qwen2.5-VL-7B-Instruct's. */

export interface QwenVisionConfig {
  depth: number;
  hidden_size: number;
  intermediate_size: number;
  num_heads: number;
  in_chans: number;
  out_hidden_size: number;
  patch_size: number;
  spatial_merge_size: number;
  temporal_patch_size: number;
  tokens_per_second: number;
  window_size: number;
  fullatt_block_indexes: number[];
  hidden_act: string;
}

export interface QwenConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  hidden_act: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  mrope_section: number[];
  tie_word_embeddings: boolean;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
  image_token_id: number;
  video_token_id: number;
  vision_start_token_id: number;
  vision_end_token_id: number;
  vision_config: QwenVisionConfig;
}

const VISION_BASE: QwenVisionConfig = {
  depth: 32, hidden_size: 1280, intermediate_size: 3420, num_heads: 16, in_chans: 3, out_hidden_size: 3584,
  patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2, tokens_per_second: 2, window_size: 112,
  fullatt_block_indexes: [7, 15, 23, 31], hidden_act: 'silu',
};

export const QWEN2_5_VL_7B: QwenConfig = {
  vocab_size: 152064, hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28,
  num_key_value_heads: 4, hidden_act: 'silu', max_position_embeddings: 128000, rms_norm_eps: 1e-6, rope_theta: 1e6,
  mrope_section: [16, 24, 24], tie_word_embeddings: false, bos_token_id: 151643, eos_token_id: 151645, pad_token_id: 151643,
  image_token_id: 151655, video_token_id: 151656, vision_start_token_id: 151652, vision_end_token_id: 151653,
  vision_config: VISION_BASE,
};

export const QWEN2_5_VL_3B: QwenConfig = {
  ...QWEN2_5_VL_7B,
  vocab_size: 151936, hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16,
  num_key_value_heads: 2, tie_word_embeddings: true,
  vision_config: { ...VISION_BASE, out_hidden_size: 2048 },
};

/** fields that must be whole numbers >= 1 (token ids may be 0) */
const POSITIVE_INTS = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings'] as const;
const TOKEN_IDS = ['bos_token_id', 'eos_token_id', 'pad_token_id', 'image_token_id', 'video_token_id', 'vision_start_token_id', 'vision_end_token_id'] as const;
const VISION_POSITIVE_INTS = ['depth', 'hidden_size', 'intermediate_size', 'num_heads', 'in_chans', 'out_hidden_size', 'patch_size', 'spatial_merge_size', 'temporal_patch_size', 'window_size'] as const;

/** Type and range checks of a read config, each naming the field. */
function checkQwenConfig(c: QwenConfig, where: string): void {
  const isPosInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1;
  const bad = (field: string, v: unknown, want: string) => new Error(`${where}: ${field} must be ${want}, got ${JSON.stringify(v)}`);
  for (const k of POSITIVE_INTS) if (!isPosInt(c[k])) throw bad(k, c[k], 'a whole number >= 1');
  for (const k of TOKEN_IDS) {
    const v = c[k];
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0)) throw bad(k, v, 'a token id (a whole number >= 0)');
    if (v >= c.vocab_size && k !== 'pad_token_id') throw bad(k, v, `below vocab_size ${c.vocab_size}`);
  }
  for (const k of ['rms_norm_eps', 'rope_theta'] as const) if (!(typeof c[k] === 'number' && c[k] > 0)) throw bad(k, c[k], 'a number > 0');
  if (typeof c.tie_word_embeddings !== 'boolean') throw bad('tie_word_embeddings', c.tie_word_embeddings, 'true or false');
  if (c.num_attention_heads % c.num_key_value_heads) throw new Error(`${where}: num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`);
  if (!Array.isArray(c.mrope_section) || !c.mrope_section.every(isPosInt)) throw bad('rope_scaling.mrope_section', c.mrope_section, 'a list of whole numbers >= 1');
  const v = c.vision_config;
  for (const k of VISION_POSITIVE_INTS) if (!isPosInt(v[k])) throw bad(`vision_config.${k}`, v[k], 'a whole number >= 1');
  if (!Array.isArray(v.fullatt_block_indexes) || !v.fullatt_block_indexes.every(i => Number.isInteger(i) && i >= 0 && i < v.depth)) {
    throw bad('vision_config.fullatt_block_indexes', v.fullatt_block_indexes, `a list of block indexes below depth ${v.depth}`);
  }
  if (v.out_hidden_size !== c.hidden_size) {
    throw new Error(`${where}: vision_config.out_hidden_size ${v.out_hidden_size} must equal hidden_size ${c.hidden_size} (the merger feeds the decoder)`);
  }
}

/**
 * Read a config.json (HF Qwen2_5_VLConfig, flat or with text_config). Missing text fields take the
 * 7B defaults, missing vision fields the official vision defaults; but `vision_config` itself must
 * be there (without it every size would silently be 7B's), and every field is type- and
 * range-checked, naming the field.
 */
export function qwenConfigFrom(raw: Record<string, unknown>, where = 'config.json'): QwenConfig {
  if (raw.model_type !== undefined && raw.model_type !== 'qwen2_5_vl' && raw.model_type !== 'dpad-qwen2_5_vl') {
    throw new Error(`${where}: model_type '${String(raw.model_type)}' is not qwen2_5_vl`);
  }
  const text = { ...raw, ...((raw.text_config as Record<string, unknown> | undefined) ?? {}) };
  const d = QWEN2_5_VL_7B;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(d) as (keyof QwenConfig)[]) {
    if (k === 'vision_config' || k === 'mrope_section') continue;
    out[k] = text[k] ?? raw[k] ?? d[k];
  }
  const rs = (text.rope_scaling ?? raw.rope_scaling) as { mrope_section?: number[] } | undefined;
  out.mrope_section = rs?.mrope_section ?? (raw.mrope_section as number[] | undefined) ?? d.mrope_section;
  if (raw.vision_config === undefined || raw.vision_config === null || typeof raw.vision_config !== 'object' || Array.isArray(raw.vision_config)) {
    throw new Error(`${where}: no vision_config object (a Qwen2.5-VL config.json has one; without it the vision tower would silently get 7B's size)`);
  }
  const v = raw.vision_config as Record<string, unknown>;
  const vc: Record<string, unknown> = {};
  for (const k of Object.keys(VISION_BASE) as (keyof QwenVisionConfig)[]) vc[k] = v[k] ?? (k === 'in_chans' ? v.in_channels : undefined) ?? VISION_BASE[k];
  out.vision_config = vc;
  const c = out as unknown as QwenConfig;
  checkQwenConfig(c, where);
  const headDim = c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim)) throw new Error(`${where}: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  if (c.mrope_section.reduce((a, b) => a + b, 0) * 2 !== headDim) throw new Error(`${where}: rope_scaling.mrope_section ${JSON.stringify(c.mrope_section)} must sum to head_dim/2 = ${headDim / 2}`);
  if (c.vision_config.hidden_size % c.vision_config.num_heads) throw new Error(`${where}: vision_config.hidden_size is not divisible by num_heads`);
  return c;
}
