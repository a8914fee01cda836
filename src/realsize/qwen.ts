/**
 * Qwen2.5-VL-3B/7B-Instruct as the hub ships them: config.json, generation_config.json,
 * preprocessor_config.json, chat_template.json, tokenizer files, and BF16 safetensors shards
 * (max_shard_size 4GB, so 3B gives 2 shards and 7B 5) with model.safetensors.index.json, in the
 * key layout of the release ('hub': visual.*, model.*, lm_head.weight) or the one
 * transformers >= 4.52 saves ('v4.52': model.visual.*, model.language_model.*, lm_head.weight).
 * A tied LM head (3B) is not stored, as save_pretrained drops tied weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import type { StorageDtype } from '../io/dtypes.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { qwenConfigFrom } from '../models/qwen2_5_vl/config.ts';
import { addedTokensFromConfig, parseMerges, qwen2TokenizerJson } from '../models/qwen2_5_vl/tokenizer.ts';
import { lazyTensor, planBytes, planShards, totalBytes, type TensorPlan } from './layout.ts';
import { normal, ONES, type Init } from './random.ts';

export type QwenLayout = 'hub' | 'v4.52';

const VISION = {
  depth: 32, hidden_act: 'silu', hidden_size: 1280, intermediate_size: 3420, num_heads: 16, in_chans: 3,
  out_hidden_size: 3584, patch_size: 14, spatial_merge_size: 2, spatial_patch_size: 14, window_size: 112,
  fullatt_block_indexes: [7, 15, 23, 31], tokens_per_second: 2, temporal_patch_size: 2,
};

/** config.json of Qwen/Qwen2.5-VL-7B-Instruct, field for field. */
export const QWEN2_5_VL_7B_HUB_CONFIG = {
  architectures: ['Qwen2_5_VLForConditionalGeneration'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  vision_start_token_id: 151652, vision_end_token_id: 151653, vision_token_id: 151654, image_token_id: 151655, video_token_id: 151656,
  hidden_act: 'silu', hidden_size: 3584, initializer_range: 0.02, intermediate_size: 18944, max_position_embeddings: 128000,
  max_window_layers: 28, model_type: 'qwen2_5_vl', num_attention_heads: 28, num_hidden_layers: 28, num_key_value_heads: 4,
  rms_norm_eps: 1e-06, rope_theta: 1000000.0, sliding_window: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16',
  transformers_version: '4.41.2', use_cache: true, use_sliding_window: false, vision_config: VISION,
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] }, vocab_size: 152064,
};

/** config.json of Qwen/Qwen2.5-VL-3B-Instruct, field for field. */
export const QWEN2_5_VL_3B_HUB_CONFIG = {
  ...QWEN2_5_VL_7B_HUB_CONFIG,
  hidden_size: 2048, intermediate_size: 11008, max_window_layers: 70, num_attention_heads: 16, num_hidden_layers: 36,
  num_key_value_heads: 2, tie_word_embeddings: true, vision_config: { ...VISION, out_hidden_size: 2048 }, vocab_size: 151936,
};

/** generation_config.json of both releases. */
export const QWEN2_5_VL_GENERATION_CONFIG = {
  bos_token_id: 151643, pad_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], repetition_penalty: 1.05,
  temperature: 0.1, top_p: 0.001, top_k: 1, transformers_version: '4.37.0',
};

export const QWEN2_5_VL_PREPROCESSOR_CONFIG = {
  min_pixels: 3136, max_pixels: 12845056, patch_size: 14, temporal_patch_size: 2, merge_size: 2,
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  image_processor_type: 'Qwen2VLImageProcessor', processor_class: 'Qwen2_5_VLProcessor',
};

export const QWEN2_5_VL_CHAT_TEMPLATE: string = "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

const SPECIAL = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>',
  '<|quad_start|>', '<|quad_end|>', '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>'];
const NOT_SPECIAL = ['<tool_call>', '</tool_call>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>'];

/** tokenizer_config.json of the releases: 22 added tokens from id 151643. */
export function qwenTokenizerConfig(): Record<string, unknown> {
  const dec: Record<string, unknown> = {};
  [...SPECIAL, ...NOT_SPECIAL].forEach((content, i) => {
    dec[String(151643 + i)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: i < SPECIAL.length };
  });
  return {
    add_bos_token: false, add_prefix_space: false, added_tokens_decoder: dec, additional_special_tokens: SPECIAL.slice(1),
    bos_token: null, chat_template: QWEN2_5_VL_CHAT_TEMPLATE, clean_up_tokenization_spaces: false, eos_token: '<|im_end|>',
    errors: 'replace', model_max_length: 131072, pad_token: '<|endoftext|>', split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer', unk_token: null,
  };
}

const isNorm = (k: string) => /(norm\d?|layernorm|ln_q)\.weight$/.test(k);

/** Stand-in values: RMSNorm weights 1, everything else normal(0, initializer_range). */
function qwenInit(key: string, std: number): Init {
  return isNorm(key) ? ONES : normal(std);
}

/**
 * Every stored tensor of Qwen2_5_VLForConditionalGeneration for a config.json, in state-dict
 * order (the vision tower, the decoder, the LM head), named in `layout`.
 */
export function qwenTensors(raw: Record<string, unknown>, layout: QwenLayout = 'hub', dtype: StorageDtype = 'BF16'): TensorPlan[] {
  const c = qwenConfigFrom(raw);
  const std = typeof raw.initializer_range === 'number' ? raw.initializer_range : 0.02;
  const out: TensorPlan[] = [];
  const vis = layout === 'hub' ? 'visual.' : 'model.visual.';
  const lm = layout === 'hub' ? 'model.' : 'model.language_model.';
  const add = (key: string, shape: number[]) => out.push({ key, dtype, shape, init: qwenInit(key, std) });
  const v = c.vision_config;
  const vd = v.hidden_size;
  const vi = v.intermediate_size;
  add(`${vis}patch_embed.proj.weight`, [vd, v.in_chans, v.temporal_patch_size, v.patch_size, v.patch_size]);
  for (let i = 0; i < v.depth; i++) {
    const b = `${vis}blocks.${i}.`;
    add(b + 'norm1.weight', [vd]);
    add(b + 'norm2.weight', [vd]);
    add(b + 'attn.qkv.weight', [3 * vd, vd]); add(b + 'attn.qkv.bias', [3 * vd]);
    add(b + 'attn.proj.weight', [vd, vd]); add(b + 'attn.proj.bias', [vd]);
    add(b + 'mlp.gate_proj.weight', [vi, vd]); add(b + 'mlp.gate_proj.bias', [vi]);
    add(b + 'mlp.up_proj.weight', [vi, vd]); add(b + 'mlp.up_proj.bias', [vi]);
    add(b + 'mlp.down_proj.weight', [vd, vi]); add(b + 'mlp.down_proj.bias', [vd]);
  }
  const merged = vd * v.spatial_merge_size ** 2;
  add(`${vis}merger.ln_q.weight`, [vd]);
  add(`${vis}merger.mlp.0.weight`, [merged, merged]); add(`${vis}merger.mlp.0.bias`, [merged]);
  add(`${vis}merger.mlp.2.weight`, [v.out_hidden_size, merged]); add(`${vis}merger.mlp.2.bias`, [v.out_hidden_size]);
  const d = c.hidden_size;
  const hd = d / c.num_attention_heads;
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  add(`${lm}embed_tokens.weight`, [c.vocab_size, d]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const b = `${lm}layers.${i}.`;
    add(b + 'self_attn.q_proj.weight', [q, d]); add(b + 'self_attn.q_proj.bias', [q]);
    add(b + 'self_attn.k_proj.weight', [kv, d]); add(b + 'self_attn.k_proj.bias', [kv]);
    add(b + 'self_attn.v_proj.weight', [kv, d]); add(b + 'self_attn.v_proj.bias', [kv]);
    add(b + 'self_attn.o_proj.weight', [d, q]);
    add(b + 'mlp.gate_proj.weight', [c.intermediate_size, d]);
    add(b + 'mlp.up_proj.weight', [c.intermediate_size, d]);
    add(b + 'mlp.down_proj.weight', [d, c.intermediate_size]);
    add(b + 'input_layernorm.weight', [d]);
    add(b + 'post_attention_layernorm.weight', [d]);
  }
  add(`${lm}norm.weight`, [d]);
  if (!c.tie_word_embeddings) add('lm_head.weight', [c.vocab_size, d]);
  return out;
}

const pad5 = (n: number) => String(n).padStart(5, '0');

export interface WriteQwenOptions {
  out: string;
  /** the config.json object (QWEN2_5_VL_3B_HUB_CONFIG, ..., or any Qwen2.5-VL config) */
  config: Record<string, unknown>;
  layout?: QwenLayout;
  seed?: number;
  /** save_pretrained's max_shard_size in bytes (default 4e9, the releases' "4GB") */
  maxShardBytes?: number;
  /** a folder with the real vocab.json + merges.txt; without it no tokenizer files are written */
  tokenizer?: string;
  dtype?: StorageDtype;
  onShard?: (name: string, i: number, n: number, bytes: number) => void;
}

export interface WriteResult {
  files: string[];
  tensors: number;
  bytes: number;
}

/** Write a Qwen2.5-VL model directory, one tensor in memory at a time. */
export function writeQwenCheckpoint(o: WriteQwenOptions): WriteResult {
  const seed = o.seed ?? 0;
  const plans = qwenTensors(o.config, o.layout ?? 'hub', o.dtype ?? 'BF16');
  const shards = planShards(plans, o.maxShardBytes ?? 4e9);
  fs.mkdirSync(o.out, { recursive: true });
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const name = shards.length === 1 ? 'model.safetensors' : `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
    writeSafetensors(path.join(o.out, name), new Map(shard.map(p => [p.key, lazyTensor(p, seed)])), { metadata: { format: 'pt' } });
    for (const p of shard) weightMap[p.key] = name;
    files.push(name);
    o.onShard?.(name, i, shards.length, shard.reduce((a, p) => a + planBytes(p), 0));
  });
  if (shards.length > 1) {
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map(k => [k, weightMap[k]]));
    writeJsonAtomic(path.join(o.out, 'model.safetensors.index.json'), { metadata: { total_size: totalBytes(plans) }, weight_map: sorted });
    files.push('model.safetensors.index.json');
  }
  writeJsonAtomic(path.join(o.out, 'config.json'), o.config);
  writeJsonAtomic(path.join(o.out, 'generation_config.json'), QWEN2_5_VL_GENERATION_CONFIG);
  writeJsonAtomic(path.join(o.out, 'preprocessor_config.json'), QWEN2_5_VL_PREPROCESSOR_CONFIG);
  writeJsonAtomic(path.join(o.out, 'chat_template.json'), { chat_template: QWEN2_5_VL_CHAT_TEMPLATE });
  files.push('config.json', 'generation_config.json', 'preprocessor_config.json', 'chat_template.json');
  if (o.tokenizer) files.push(...writeQwenTokenizer(o.tokenizer, o.out));
  return { files, tensors: plans.length, bytes: totalBytes(plans) };
}

/** vocab.json + merges.txt copied from `from`, tokenizer_config.json, and the equivalent tokenizer.json. */
export function writeQwenTokenizer(from: string, out: string): string[] {
  const vj = path.join(from, 'vocab.json');
  const mt = path.join(from, 'merges.txt');
  for (const f of [vj, mt]) if (!fs.existsSync(f)) throw new Error(`${from}: no ${path.basename(f)} (the tokenizer folder holds the real Qwen2 vocab.json + merges.txt)`);
  fs.copyFileSync(vj, path.join(out, 'vocab.json'));
  fs.copyFileSync(mt, path.join(out, 'merges.txt'));
  // the copies are ours to rewrite, whatever the source's mode (the fixtures are read-only)
  for (const f of ['vocab.json', 'merges.txt']) fs.chmodSync(path.join(out, f), 0o644);
  const tc = qwenTokenizerConfig();
  writeJsonAtomic(path.join(out, 'tokenizer_config.json'), tc);
  const vocab = JSON.parse(fs.readFileSync(vj, 'utf8')) as Record<string, number>;
  const merges = parseMerges(fs.readFileSync(mt, 'utf8'), mt);
  writeFileAtomic(path.join(out, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson(vocab, merges, addedTokensFromConfig(tc))));
  return ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'tokenizer.json'];
}
