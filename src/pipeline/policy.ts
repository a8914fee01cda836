/**
 * The policy bundle: the Qwen2.5-VL model with its tokenizer and processor settings, and the
 * encoding of (image, query) into prompt ids. Token ids of the config are checked against the
 * tokenizer when both are loaded. A checkpoint's generation_config.json, when present, gives the
 * stop tokens (its eos_token_id) and the repetition penalty, as HF's generate reads them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageU8 } from '../io/resample.ts';
import type { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import { chatPrompt, preprocessImage, MAX_PIXELS, MIN_PIXELS } from '../models/qwen2_5_vl/processor.ts';
import { readGenerationConfig, type GenerationConfig } from '../models/qwen2_5_vl/generation-config.ts';
import { PolicyTokenizer } from '../models/qwen2_5_vl/tokenizer.ts';
import type { GridTHW } from '../models/qwen2_5_vl/vision.ts';
import { loadQwen } from '../models/qwen2_5_vl/weights.ts';
import { userPrompt } from '../prompt/template.ts';
import { toView } from './frame.ts';

export interface Policy {
  model: Qwen2_5_VL;
  tokenizer: PolicyTokenizer;
  /** the square view the policy sees (SPEC: 840) */
  viewSize: number;
  minPixels: number;
  maxPixels: number;
  /**
   * ids that end a response: generation_config.json's eos_token_id when it names any, else
   * <|im_end|> and config.json's eos_token_id
   */
  stopTokens: number[];
  /** generation_config.json's repetition_penalty (1 = none); pass it to generate */
  repetitionPenalty: number;
  /**
   * ids a response may never hold, passed to generate as suppressTokens: the image and video
   * placeholders, which only the processor places (a trained checkpoint gives them no mass; a
   * small or fresh one can sample them, and then no pass has features for them)
   */
  suppressTokens: number[];
}

export interface PolicyOptions {
  viewSize?: number;
  minPixels?: number;
  maxPixels?: number;
  /** a checkpoint's generation config (loadPolicy reads generation_config.json) */
  generationConfig?: GenerationConfig | null;
  /** overrides the generation config's stop tokens */
  stopTokens?: number[];
  /** overrides the generation config's repetition penalty */
  repetitionPenalty?: number;
}

export function makePolicy(model: Qwen2_5_VL, tokenizer: PolicyTokenizer, opts: PolicyOptions = {}): Policy {
  const c = model.config;
  const checks: [string, number][] = [['<|image_pad|>', c.image_token_id], ['<|vision_start|>', c.vision_start_token_id], ['<|vision_end|>', c.vision_end_token_id]];
  for (const [tok, id] of checks) {
    const got = tokenizer.tokenId(tok);
    if (got !== id) throw new Error(`${tokenizer.dir}: tokenizer gives ${tok} id ${got} but config.json says ${id}`);
  }
  const gen = opts.generationConfig ?? null;
  let stop = opts.stopTokens ?? (gen && gen.eosTokenIds.length ? gen.eosTokenIds : [tokenizer.tokenId('<|im_end|>'), c.eos_token_id]);
  for (const id of stop) if (!Number.isInteger(id) || id < 0 || id >= c.vocab_size) throw new Error(`policy: stop token ${id} outside the vocabulary of ${c.vocab_size}`);
  stop = [...new Set(stop)];
  const repetitionPenalty = opts.repetitionPenalty ?? gen?.repetitionPenalty ?? 1;
  if (!(repetitionPenalty > 0)) throw new Error(`policy: repetitionPenalty has to be a strictly positive number, but is ${repetitionPenalty}`);
  const suppressTokens = [...new Set([c.image_token_id, c.video_token_id])].filter(id => Number.isInteger(id) && id >= 0 && id < c.vocab_size);
  return { model, tokenizer, viewSize: opts.viewSize ?? 840, minPixels: opts.minPixels ?? MIN_PIXELS, maxPixels: opts.maxPixels ?? MAX_PIXELS, stopTokens: stop, repetitionPenalty, suppressTokens };
}

/**
 * Load a policy directory: config.json, weights, the tokenizer (tokenizer.json, or vocab.json +
 * merges.txt), generation_config.json when present, and dpad.json for the view size.
 */
export function loadPolicy(dir: string, opts: Omit<PolicyOptions, 'generationConfig'> = {}): Policy {
  const model = loadQwen(dir);
  try {
    const tok = PolicyTokenizer.load(dir);
    let viewSize = opts.viewSize;
    const extra = path.join(dir, 'dpad.json');
    if (viewSize === undefined && fs.existsSync(extra)) viewSize = JSON.parse(fs.readFileSync(extra, 'utf8')).viewSize;
    return makePolicy(model, tok, { ...opts, viewSize, generationConfig: readGenerationConfig(dir) });
  } catch (e) {
    model.dispose();
    throw e;
  }
}

export interface EncodedPrompt {
  ids: number[];
  pixelValues: tf.Tensor2D;
  grid: GridTHW;
  /** the view the policy saw */
  view: ImageU8;
}

/** image -> the policy's view of it, its pixel values, grid and number of image tokens (no text). */
export function encodeImage(policy: Policy, image: ImageU8): Omit<EncodedPrompt, 'ids'> & { tokens: number } {
  const view = toView(image, policy.viewSize);
  const p = preprocessImage(view, policy.model.config.vision_config, { minPixels: policy.minPixels, maxPixels: policy.maxPixels });
  return { pixelValues: p.pixelValues, grid: p.grid, view, tokens: p.tokens };
}

/** (image, query) -> prompt ids with the image pad expanded, and the image's pixel values. */
export function encodePrompt(policy: Policy, image: ImageU8, query: string, variant: 'dpad' | 'baseline' = 'dpad'): EncodedPrompt {
  const { pixelValues, grid, view, tokens } = encodeImage(policy, image);
  const ids = policy.tokenizer.encode(chatPrompt(userPrompt(query, variant), tokens));
  return { ids, pixelValues, grid, view };
}

/** Token span [start, end) of the `<answer>` JSON inside a response text, as the tokenizer splits it. */
export function answerTokenSpan(tokenizer: PolicyTokenizer, text: string): [number, number] {
  const a = text.indexOf('<answer>');
  const z = text.indexOf('</answer>');
  if (a < 0 || z < a) throw new Error(`answerTokenSpan: no <answer>...</answer> in ${JSON.stringify(text.slice(0, 80))}`);
  return [tokenizer.encode(text.slice(0, a + '<answer>'.length)).length, tokenizer.encode(text.slice(0, z)).length];
}

/** Left-pad rows of ids into one batch: ids [B * L] and mask [B * L]. */
export function leftPad(rows: number[][], pad: number): { ids: Int32Array; mask: Int32Array; length: number } {
  const length = Math.max(...rows.map(r => r.length));
  const ids = new Int32Array(rows.length * length).fill(pad);
  const mask = new Int32Array(rows.length * length);
  rows.forEach((r, b) => {
    ids.set(r, b * length + length - r.length);
    mask.fill(1, b * length + length - r.length, (b + 1) * length);
  });
  return { ids, mask, length };
}
