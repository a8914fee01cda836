/** Golden adapter for the `qwen2_5_vl` family: vision tower, rope index, logits, greedy generation, preprocessing. */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { imageFromHwc } from '../../../src/io/image.ts';
import { qwenConfigFrom } from '../../../src/models/qwen2_5_vl/config.ts';
import { generate } from '../../../src/models/qwen2_5_vl/generate.ts';
import { Qwen2_5_VL } from '../../../src/models/qwen2_5_vl/model.ts';
import { renderChat, type ChatMessage } from '../../../src/models/qwen2_5_vl/chat.ts';
import { preprocessImage, processChat } from '../../../src/models/qwen2_5_vl/processor.ts';
import { ropeIndex } from '../../../src/models/qwen2_5_vl/rope.ts';
import { PolicyTokenizer, type AddedTokenSpec } from '../../../src/models/qwen2_5_vl/tokenizer.ts';
import { windowIndex, type GridTHW } from '../../../src/models/qwen2_5_vl/vision.ts';
import { loadQwen } from '../../../src/models/qwen2_5_vl/weights.ts';
import type { FamilyAdapter, FixtureContext, OutputValue } from '../harness.ts';

function model(ctx: FixtureContext): Qwen2_5_VL {
  let m = ctx.state.get('model') as Qwen2_5_VL | undefined;
  if (!m) {
    m = loadQwen(ctx.dir);
    ctx.state.set('model', m);
  }
  return m;
}

/** The tokenizer of a tokenizer fixture: assets vocab/merges, config added_tokens (or a model directory). */
function tokenizer(ctx: FixtureContext): PolicyTokenizer {
  let t = ctx.state.get('tokenizer') as PolicyTokenizer | undefined;
  if (!t) {
    const a = ctx.fixture.assets;
    t = a?.vocab && a?.merges
      ? PolicyTokenizer.fromFiles(path.join(ctx.dir, a.vocab), path.join(ctx.dir, a.merges), (ctx.fixture.config?.added_tokens ?? []) as AddedTokenSpec[], ctx.dir)
      : PolicyTokenizer.load(ctx.dir);
    ctx.state.set('tokenizer', t);
  }
  return t;
}

/** The image processor settings of a tokenizer fixture (config.image_processor) or of a model's vision config. */
function imageSettings(ctx: FixtureContext) {
  const ip = ctx.fixture.config?.image_processor as { patch_size: number; temporal_patch_size: number; merge_size: number } | undefined;
  if (ip) return { patch_size: ip.patch_size, temporal_patch_size: ip.temporal_patch_size, spatial_merge_size: ip.merge_size };
  return qwenConfigFrom(JSON.parse(fs.readFileSync(path.join(ctx.dir, 'config.json'), 'utf8'))).vision_config;
}

const ids1 = (ids: number[]) => ({ shape: [1, ids.length], data: Int32Array.from(ids) });

const grids = (r: unknown): GridTHW[] => {
  const x = r as RawTensor | undefined;
  if (!x) return [];
  const out: GridTHW[] = [];
  for (let i = 0; i < x.shape[0]; i++) out.push([x.data[i * 3], x.data[i * 3 + 1], x.data[i * 3 + 2]]);
  return out;
};

function common(inputs: Record<string, unknown>) {
  const ids = inputs.input_ids as RawTensor;
  const [batch, length] = ids.shape;
  const mask = inputs.attention_mask as RawTensor | undefined;
  const pv = inputs.pixel_values as RawTensor | undefined;
  return {
    ids: Int32Array.from(ids.data), batch, length,
    attentionMask: mask ? Int32Array.from(mask.data) : null,
    pixelValues: pv ? tf.tensor2d(pv.data as Float32Array, pv.shape as [number, number]) : null,
    grids: grids(inputs.image_grid_thw),
  };
}

export const qwenAdapter: FamilyAdapter = {
  family: 'qwen2_5_vl',
  entries: {
    'qwen2_5_vl.vision': (inputs, ctx) => {
      const pv = inputs.pixel_values as RawTensor;
      return { image_embeds: tf.tidy(() => model(ctx).visual.forward(tf.tensor2d(pv.data as Float32Array, pv.shape as [number, number]), grids(inputs.image_grid_thw))) };
    },
    'qwen2_5_vl.rope_index': (inputs, ctx) => {
      const c = common(inputs);
      c.pixelValues?.dispose();
      const r = ropeIndex(c.ids, c.attentionMask, c.batch, c.length, c.grids, model(ctx).config);
      return { position_ids: { shape: [3, c.batch, c.length], data: r.positionIds }, rope_deltas: { shape: [c.batch, 1], data: r.ropeDeltas } };
    },
    'qwen2_5_vl.logits': (inputs, ctx) => {
      const c = common(inputs);
      const out = model(ctx).forward({ ...c, positions: inputs.positions === 'last' ? 'last' : 'all' });
      c.pixelValues?.dispose();
      return { logits: out.logits };
    },
    'qwen2_5_vl.generate_greedy': (inputs, ctx) => {
      const c = common(inputs);
      const r = generate(model(ctx), { ...c, maxNewTokens: Number(inputs.max_new_tokens), greedy: true, stopTokens: [] });
      c.pixelValues?.dispose();
      return { tokens: { shape: [c.batch, Number(inputs.max_new_tokens)], data: Int32Array.from(r.tokens.flat()) } };
    },
    'qwen2_5_vl.preprocess': (inputs, ctx) => {
      const img = inputs.image as RawTensor;
      const p = preprocessImage(imageFromHwc(img.data as Uint8Array, img.shape), imageSettings(ctx), { minPixels: Number(inputs.min_pixels), maxPixels: Number(inputs.max_pixels) });
      return { image_grid_thw: { shape: [1, 3], data: p.grid }, pixel_values: p.pixelValues };
    },
    'qwen2_5_vl.window_index': inputs => {
      const cfg = { window_size: Number(inputs.window_size), patch_size: Number(inputs.patch_size), spatial_merge_size: Number(inputs.spatial_merge_size) };
      const r = windowIndex(grids(inputs.image_grid_thw), cfg);
      return { window_index: { shape: [r.index.length], data: r.index }, cu_window_seqlens: { shape: [r.cuSeqlens.length], data: Int32Array.from(r.cuSeqlens) } };
    },
    'qwen2_5_vl.tokenize': (inputs, ctx) => ({ input_ids: ids1(tokenizer(ctx).encode(String(inputs.text))) }),
    'qwen2_5_vl.chat_template': inputs => ({
      text: renderChat(inputs.messages as ChatMessage[], { addGenerationPrompt: Boolean(inputs.add_generation_prompt), addVisionId: Boolean(inputs.add_vision_id) }),
    }),
    'qwen2_5_vl.process': (inputs, ctx) => {
      const raw = (Array.isArray(inputs.images) ? inputs.images : inputs.image === undefined ? [] : [inputs.image]) as RawTensor[];
      const images = raw.map(img => imageFromHwc(img.data as Uint8Array, img.shape));
      const r = processChat(tokenizer(ctx), inputs.messages as ChatMessage[], images, imageSettings(ctx), {
        addGenerationPrompt: Boolean(inputs.add_generation_prompt), addVisionId: Boolean(inputs.add_vision_id),
        minPixels: inputs.min_pixels === undefined ? undefined : Number(inputs.min_pixels), maxPixels: inputs.max_pixels === undefined ? undefined : Number(inputs.max_pixels),
      });
      const out: Record<string, OutputValue> = { input_ids: ids1(r.ids), image_grid_thw: { shape: [r.grids.length, 3], data: r.grids.flat() } };
      if (r.pixelValues) out.pixel_values = r.pixelValues;
      return out;
    },
  },
  teardown: ctx => (ctx.state.get('model') as Qwen2_5_VL | undefined)?.dispose(),
};
