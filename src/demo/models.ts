/**
 * Small configurations of the three models for the embedded world, and the world's tokenizer:
 * the same architectures and code paths as the real 3B/7B models, at a size a 2-core machine trains.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../io/atomic.ts';
import { VIT_B_32, type ClipConfig } from '../models/clip/config.ts';
import { QWEN2_5_VL_3B, type QwenConfig } from '../models/qwen2_5_vl/config.ts';
import { SAM2_HIERA_T, type Sam2Config } from '../models/sam2/config.ts';
import { DPAD_PROMPT, BASELINE_PROMPT } from '../prompt/template.ts';
import { referenceResponse, worldSample } from '../data/world/generator.ts';
import { SPECIAL_TOKENS, specialIds, trainByteLevelBpe } from './tokenizer.ts';

/** Corpus for the world tokenizer: the prompts, the chat template words, and reference responses. */
export function worldCorpus(n = 400, frame = 840): string[] {
  const out = [DPAD_PROMPT, BASELINE_PROMPT, 'system\nYou are a helpful assistant.', 'user\n', 'assistant\n'];
  for (let i = 0; i < n; i++) {
    const s = worldSample('train', i, { frame });
    out.push(s.query, referenceResponse(s, frame));
  }
  return out;
}

/** Train the world tokenizer and write tokenizer.json into `dir`; returns the ids of the special tokens. */
export function writeWorldTokenizer(dir: string, opts: { merges?: number; corpus?: string[]; numbers?: number } = {}): { vocabSize: number; ids: ReturnType<typeof specialIds> } {
  // numbers: every coordinate 0..numbers one token (tokenizer.ts numberMerges)
  const bpe = trainByteLevelBpe(opts.corpus ?? worldCorpus(), opts.merges ?? 700, { numbers: opts.numbers });
  fs.mkdirSync(dir, { recursive: true });
  writeJsonAtomic(path.join(dir, 'tokenizer.json'), bpe.json);
  writeJsonAtomic(path.join(dir, 'tokenizer_config.json'), { model_max_length: 4096, eos_token: '<|im_end|>', pad_token: '<|endoftext|>' });
  const base = Object.keys(bpe.vocab).length;
  return { vocabSize: base + SPECIAL_TOKENS.length, ids: specialIds(base) };
}

/**
 * A Qwen2.5-VL config of the given size around a tokenizer's ids: 'tiny' for tests, 'demo' the
 * shipped demo policy's (weights/demo/policy/config.json), 'ground' the larger recipe under
 * development for a demo policy that grounds (issue 22, RESULTS.md).
 *
 * 'ground' sets its own M-RoPE: the official layout (theta 1e6, sections [16, 24, 24] of a
 * 128-wide head) scaled to a 64-wide head gives height and width frequencies of ~1e-3 rad per
 * position, so the decoder can hardly tell one image token's place from another's (shuffling them
 * left the old demo policy's NLL unchanged, RESULTS.md). With theta 1000 and sections [4, 8, 20],
 * the height section turns 0.42-0.10 rad per row and the width section's first dimensions
 * 0.075-0.032 rad per column, while its last ones (below 0.006) stay nearly unrotated over the
 * few hundred positions of a prompt and response, for attention by content.
 */
export function worldQwenConfig(tok: { vocabSize: number; ids: ReturnType<typeof specialIds> }, size: 'tiny' | 'demo' | 'ground' = 'demo'): QwenConfig {
  const d = size === 'tiny'
    ? { h: 32, i: 64, l: 2, heads: 4, kv: 2, vh: 32, vi: 64, vd: 2, vheads: 2 }
    : size === 'demo'
      ? { h: 128, i: 384, l: 4, heads: 4, kv: 2, vh: 64, vi: 128, vd: 2, vheads: 2 }
      : { h: 256, i: 768, l: 4, heads: 4, kv: 2, vh: 128, vi: 256, vd: 3, vheads: 4 };
  const headDim = d.h / d.heads;
  const sec = headDim / 2;
  const t = Math.floor(sec / 4) * 2;
  const hw = (sec - t) / 2;
  const rope = size === 'ground' ? { rope_theta: 1000, mrope_section: [4, 8, 20] } : { mrope_section: [t, Math.ceil(hw), Math.floor(hw)] };
  return {
    ...QWEN2_5_VL_3B,
    vocab_size: tok.vocabSize, hidden_size: d.h, intermediate_size: d.i, num_hidden_layers: d.l, num_attention_heads: d.heads, num_key_value_heads: d.kv,
    max_position_embeddings: 4096, ...rope, tie_word_embeddings: true,
    bos_token_id: tok.ids['<|endoftext|>'], eos_token_id: tok.ids['<|im_end|>'], pad_token_id: tok.ids['<|endoftext|>'],
    image_token_id: tok.ids['<|image_pad|>'], video_token_id: tok.ids['<|video_pad|>'], vision_start_token_id: tok.ids['<|vision_start|>'], vision_end_token_id: tok.ids['<|vision_end|>'],
    vision_config: { ...QWEN2_5_VL_3B.vision_config, depth: d.vd, hidden_size: d.vh, intermediate_size: d.vi, num_heads: d.vheads, out_hidden_size: d.h, window_size: 112, fullatt_block_indexes: [d.vd - 1] },
  };
}

/** config.json for a world policy, in the HF field names the loader reads. */
export function qwenConfigJson(c: QwenConfig): Record<string, unknown> {
  const { mrope_section, ...rest } = c;
  return { model_type: 'qwen2_5_vl', architectures: ['Qwen2_5_VLForConditionalGeneration'], ...rest, rope_scaling: { type: 'mrope', mrope_section } };
}

export function worldClipConfig(size: 'tiny' | 'demo' = 'demo'): ClipConfig {
  return size === 'tiny'
    ? { embed: 16, vision: { image: 32, patch: 16, width: 32, layers: 1, heads: 2, mlp: 64 }, text: { ...VIT_B_32.text, width: 32, layers: 1, heads: 2, mlp: 64 }, eps: 1e-5 }
    : { embed: 64, vision: { image: 64, patch: 8, width: 96, layers: 3, heads: 3, mlp: 384 }, text: { ...VIT_B_32.text, width: 64, layers: 2, heads: 2, mlp: 256 }, eps: 1e-5 };
}

export function worldSam2Config(size: 'tiny' | 'demo' = 'demo'): Sam2Config {
  // the demo's neck is 64 wide: the mask decoder's per-pixel embedding is d_model / 8 channels
  const e = size === 'tiny' ? 8 : 24;
  return {
    // the shipped demo segmenter runs at 192 px (a 12 x 12 image embedding): at 128 px the 8 x 8
    // embedding is coarser than the world's objects and its test box IoU stayed lower (0.853 vs 0.878)
    image_size: size === 'tiny' ? 64 : 192,
    trunk: { embed_dim: e, num_heads: 1, stages: [1, 1, 2, 1], global_att_blocks: [3], window_pos_embed_bkg_spatial_size: [4, 4], window_spec: [8, 4, 4, 2] },
    neck: { d_model: size === 'tiny' ? 32 : 64, backbone_channel_list: [e * 8, e * 4, e * 2, e], fpn_top_down_levels: [2, 3], fpn_interp_model: 'nearest', scalp: 1 },
    sam: { ...SAM2_HIERA_T.sam, two_way_transformer: { depth: 2, mlp_dim: size === 'tiny' ? 128 : 256, num_heads: 4 } },
  };
}
