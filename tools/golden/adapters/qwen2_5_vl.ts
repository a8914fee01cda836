/** Golden adapter for the `qwen2_5_vl` family: vision tower, rope index, logits, greedy generation, preprocessing. */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { imageFromHwc } from '../../../src/io/image.ts';
import { qwenConfigFrom } from '../../../src/models/qwen2_5_vl/config.ts';
import { generate } from '../../../src/models/qwen2_5_vl/generate.ts';
import { Qwen2_5_VL } from '../../../src/models/qwen2_5_vl/model.ts';
import { preprocessImage } from '../../../src/models/qwen2_5_vl/processor.ts';
import { ropeIndex } from '../../../src/models/qwen2_5_vl/rope.ts';
import type { GridTHW } from '../../../src/models/qwen2_5_vl/vision.ts';
import { loadQwen } from '../../../src/models/qwen2_5_vl/weights.ts';
import type { FamilyAdapter, FixtureContext } from '../harness.ts';

function model(ctx: FixtureContext): Qwen2_5_VL {
  let m = ctx.state.get('model') as Qwen2_5_VL | undefined;
  if (!m) {
    m = loadQwen(ctx.dir);
    ctx.state.set('model', m);
  }
  return m;
}

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
      const cfg = qwenConfigFrom(JSON.parse(fs.readFileSync(path.join(ctx.dir, 'config.json'), 'utf8')));
      const p = preprocessImage(imageFromHwc(img.data as Uint8Array, img.shape), cfg.vision_config, { minPixels: Number(inputs.min_pixels), maxPixels: Number(inputs.max_pixels) });
      return { image_grid_thw: { shape: [1, 3], data: p.grid }, pixel_values: p.pixelValues };
    },
  },
  teardown: ctx => (ctx.state.get('model') as Qwen2_5_VL | undefined)?.dispose(),
};
