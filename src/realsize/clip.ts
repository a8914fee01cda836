/**
 * openai/clip-vit-base-patch32 as the hub ships it: config.json (the 2021 transformers dump, field
 * for field), one F32 model.safetensors in CLIPModel's key names (with the int64 position_ids
 * buffers old transformers saved, and a 0-d logit_scale), and the HF tokenizer files (vocab.json,
 * merges.txt, tokenizer_config.json, special_tokens_map.json) derived from OpenAI's
 * bpe_simple_vocab_16e6.txt.gz exactly as HF's are, plus preprocessor_config.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { bytePairs } from '../io/byte_alphabet.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { lazyTensor, totalBytes, type TensorPlan } from './layout.ts';
import { constant, normal, ONES, ZEROS, type Init } from './random.ts';
import type { WriteResult } from './qwen.ts';

/** The generic PretrainedConfig fields transformers 4.16 wrote into each sub-config. */
const PRETRAINED_DEFAULTS = {
  _name_or_path: '', add_cross_attention: false, architectures: null, attention_dropout: 0.0, bad_words_ids: null,
  chunk_size_feed_forward: 0, cross_attention_hidden_size: null, decoder_start_token_id: null, diversity_penalty: 0.0,
  do_sample: false, dropout: 0.0, early_stopping: false, encoder_no_repeat_ngram_size: 0, finetuning_task: null,
  forced_bos_token_id: null, forced_eos_token_id: null, hidden_act: 'quick_gelu', id2label: { 0: 'LABEL_0', 1: 'LABEL_1' },
  initializer_factor: 1.0, initializer_range: 0.02, is_decoder: false, is_encoder_decoder: false, label2id: { LABEL_0: 0, LABEL_1: 1 },
  layer_norm_eps: 1e-05, length_penalty: 1.0, max_length: 20, min_length: 0, no_repeat_ngram_size: 0, num_beam_groups: 1,
  num_beams: 1, num_return_sequences: 1, output_attentions: false, output_hidden_states: false, output_scores: false,
  prefix: null, problem_type: null, pruned_heads: {}, remove_invalid_values: false, repetition_penalty: 1.0, return_dict: true,
  return_dict_in_generate: false, sep_token_id: null, task_specific_params: null, temperature: 1.0, tie_encoder_decoder: false,
  tie_word_embeddings: true, tokenizer_class: null, top_k: 50, top_p: 1.0, torch_dtype: null, torchscript: false,
  transformers_version: '4.16.0.dev0', use_bfloat16: false,
};

const sorted = (o: Record<string, unknown>) => Object.fromEntries(Object.keys(o).sort().map(k => [k, o[k]]));

/** config.json of openai/clip-vit-base-patch32. */
export const CLIP_B32_HUB_CONFIG: Record<string, unknown> = {
  _name_or_path: 'openai/clip-vit-base-patch32', architectures: ['CLIPModel'], initializer_factor: 1.0, logit_scale_init_value: 2.6592,
  model_type: 'clip', projection_dim: 512,
  text_config: sorted({
    ...PRETRAINED_DEFAULTS, bos_token_id: 0, eos_token_id: 2, pad_token_id: 1, hidden_size: 512, intermediate_size: 2048,
    max_position_embeddings: 77, model_type: 'clip_text_model', num_attention_heads: 8, num_hidden_layers: 12, projection_dim: 512, vocab_size: 49408,
  }),
  text_config_dict: null, transformers_version: null,
  vision_config: sorted({
    ...PRETRAINED_DEFAULTS, bos_token_id: null, eos_token_id: null, pad_token_id: null, hidden_size: 768, image_size: 224,
    intermediate_size: 3072, model_type: 'clip_vision_model', num_attention_heads: 12, num_hidden_layers: 12, patch_size: 32, projection_dim: 512,
  }),
  vision_config_dict: null,
};

export const CLIP_PREPROCESSOR_CONFIG = {
  crop_size: 224, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: 'CLIPFeatureExtractor',
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size: 224,
};

type Obj = Record<string, unknown>;
const n = (o: Obj, k: string): number => {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`CLIP config: ${k} must be a whole number >= 1, got ${JSON.stringify(v)}`);
  return v;
};

/** Every tensor of CLIPModel's state dict (transformers 4.16) for an HF CLIPConfig, F32. */
export function clipTensors(config: Obj): TensorPlan[] {
  const t = (config.text_config ?? {}) as Obj;
  const v = (config.vision_config ?? {}) as Obj;
  const out: TensorPlan[] = [];
  const add = (key: string, shape: number[], init: Init, dtype: 'F32' | 'I64' = 'F32') => out.push({ key, dtype, shape, init });
  const w = normal(0.02);
  const linear = (p: string, o: number, i: number, bias = true) => { add(`${p}.weight`, [o, i], w); if (bias) add(`${p}.bias`, [o], w); };
  const ln = (p: string, c: number) => { add(`${p}.weight`, [c], ONES); add(`${p}.bias`, [c], ZEROS); };
  const encoder = (p: string, d: number, mlp: number, layers: number) => {
    for (let l = 0; l < layers; l++) {
      const b = `${p}.encoder.layers.${l}`;
      for (const x of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) linear(`${b}.self_attn.${x}`, d, d);
      ln(`${b}.layer_norm1`, d);
      linear(`${b}.mlp.fc1`, mlp, d);
      linear(`${b}.mlp.fc2`, d, mlp);
      ln(`${b}.layer_norm2`, d);
    }
  };
  const td = n(t, 'hidden_size');
  const ctx = n(t, 'max_position_embeddings');
  add('text_model.embeddings.position_ids', [1, ctx], { kind: 'arange' }, 'I64');
  add('text_model.embeddings.token_embedding.weight', [n(t, 'vocab_size'), td], w);
  add('text_model.embeddings.position_embedding.weight', [ctx, td], normal(0.01));
  encoder('text_model', td, n(t, 'intermediate_size'), n(t, 'num_hidden_layers'));
  ln('text_model.final_layer_norm', td);
  const vd = n(v, 'hidden_size');
  const patch = n(v, 'patch_size');
  const positions = (n(v, 'image_size') / patch) ** 2 + 1;
  add('vision_model.embeddings.class_embedding', [vd], w);
  add('vision_model.embeddings.position_ids', [1, positions], { kind: 'arange' }, 'I64');
  add('vision_model.embeddings.patch_embedding.weight', [vd, 3, patch, patch], w);
  add('vision_model.embeddings.position_embedding.weight', [positions, vd], w);
  ln('vision_model.pre_layrnorm', vd);
  encoder('vision_model', vd, n(v, 'intermediate_size'), n(v, 'num_hidden_layers'));
  ln('vision_model.post_layernorm', vd);
  const proj = n(config, 'projection_dim');
  linear('visual_projection', proj, vd, false);
  linear('text_projection', proj, td, false);
  add('logit_scale', [], constant(Math.log(100)));
  return out;
}

/** vocab.json and merges.txt of HF's CLIPTokenizer, from OpenAI's bpe_simple_vocab_16e6.txt.gz. */
export function clipHfVocab(bpeGz: string): { vocab: Record<string, number>; merges: string } {
  let text: string;
  try {
    text = zlib.gunzipSync(fs.readFileSync(bpeGz)).toString('utf8');
  } catch (e) {
    throw new Error(`${bpeGz}: cannot read the BPE vocabulary (${(e as Error).message})`);
  }
  const lines = text.split('\n').slice(1, 49152 - 256 - 2 + 1);
  const base = bytePairs().map(([, c]) => c);
  const tokens = [...base, ...base.map(b => `${b}</w>`), ...lines.map(l => l.split(' ').join('')), '<|startoftext|>', '<|endoftext|>'];
  const vocab: Record<string, number> = {};
  tokens.forEach((tok, i) => { vocab[tok] = i; });
  return { vocab, merges: ['#version: 0.2', ...lines].join('\n') + '\n' };
}

/** Write an openai/clip-vit-base-patch32 model directory; `vocab` is bpe_simple_vocab_16e6.txt.gz (no tokenizer files without it). */
export function writeClipCheckpoint(o: { out: string; config?: Obj; seed?: number; vocab?: string }): WriteResult {
  const config = o.config ?? CLIP_B32_HUB_CONFIG;
  const plans = clipTensors(config);
  fs.mkdirSync(o.out, { recursive: true });
  writeSafetensors(path.join(o.out, 'model.safetensors'), new Map(plans.map(p => [p.key, lazyTensor(p, o.seed ?? 0)])), { metadata: { format: 'pt' } });
  writeJsonAtomic(path.join(o.out, 'config.json'), config);
  writeJsonAtomic(path.join(o.out, 'preprocessor_config.json'), CLIP_PREPROCESSOR_CONFIG);
  const files = ['model.safetensors', 'config.json', 'preprocessor_config.json'];
  if (o.vocab) {
    const { vocab, merges } = clipHfVocab(o.vocab);
    writeFileAtomic(path.join(o.out, 'vocab.json'), JSON.stringify(vocab));
    writeFileAtomic(path.join(o.out, 'merges.txt'), merges);
    const special = {
      bos_token: { content: '<|startoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true },
      eos_token: { content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true },
      unk_token: { content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true },
      pad_token: '<|endoftext|>',
    };
    writeJsonAtomic(path.join(o.out, 'special_tokens_map.json'), special);
    writeJsonAtomic(path.join(o.out, 'tokenizer_config.json'), {
      unk_token: special.unk_token, bos_token: special.bos_token, eos_token: special.eos_token, pad_token: '<|endoftext|>',
      add_prefix_space: false, errors: 'replace', do_lower_case: true, name_or_path: 'openai/clip-vit-base-patch32',
      model_max_length: 77, special_tokens_map_file: './special_tokens_map.json', tokenizer_class: 'CLIPTokenizer',
    });
    files.push('vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json');
  }
  return { files, tensors: plans.length, bytes: totalBytes(plans) };
}
