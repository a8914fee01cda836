/** Golden adapter for the `clip` family: tokenizer, preprocessing, both towers, the logits and DPAD's similarity. */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { imageFromHwc } from '../../../src/io/image.ts';
import { SafetensorsFile } from '../../../src/io/safetensors.ts';
import { clipConfigFrom } from '../../../src/models/clip/config.ts';
import { ClipModel } from '../../../src/models/clip/model.ts';
import { clipPreprocess } from '../../../src/models/clip/preprocess.ts';
import { ClipTokenizer } from '../../../src/models/clip/tokenizer.ts';
import { loadClipWeights } from '../../../src/models/clip/weights.ts';
import { dpadScores } from '../../../src/models/clip/dpad.ts';
import { discriminativeReward } from '../../../src/rewards/components.ts';
import type { FamilyAdapter, FixtureContext, OutputValue } from '../harness.ts';

function model(ctx: FixtureContext): ClipModel {
  let m = ctx.state.get('model') as ClipModel | undefined;
  if (!m) {
    const fx = ctx.fixture;
    if (!fx.weights || !fx.config) throw new Error('clip fixture without weights or config');
    const src = SafetensorsFile.open(path.join(ctx.dir, fx.weights.file));
    m = new ClipModel(clipConfigFrom(fx.config, path.join(ctx.dir, 'fixture.json')));
    try {
      loadClipWeights(m, src, fx.weights.format === 'hf' ? 'hf' : 'openai');
    } finally {
      src.close();
    }
    ctx.state.set('model', m);
  }
  return m;
}

/** OpenAI's clip.tokenize text path, or ('hf') CLIPTokenizerFast's, as the DPAD processor runs. */
function tokenizer(ctx: FixtureContext, normalization: 'openai' | 'hf' = 'openai'): ClipTokenizer {
  const key = `tokenizer:${normalization}`;
  let t = ctx.state.get(key) as ClipTokenizer | undefined;
  if (!t) {
    t = ClipTokenizer.fromBpeFile(path.join(ctx.dir, ctx.fixture.assets?.vocab ?? 'bpe_simple_vocab_16e6.txt.gz'), { normalization });
    ctx.state.set(key, t);
  }
  return t;
}

const f32 = (a: Float32Array | null, shape: number[]): OutputValue | undefined => (a ? { shape, data: a } : undefined);

const pixels = (r: unknown) => { const x = r as RawTensor; return tf.tensor4d(x.data as Float32Array, x.shape as [number, number, number, number]); };
const ids = (r: unknown) => { const x = r as RawTensor; return tf.tensor2d(x.data as Int32Array, x.shape as [number, number], 'int32'); };

export const clipAdapter: FamilyAdapter = {
  family: 'clip',
  entries: {
    'clip.tokenize': (inputs, ctx) => {
      const t = tokenizer(ctx).tokenize(inputs.texts as string[], Number(inputs.context_length ?? 77), true);
      return { input_ids: { shape: t.shape, data: t.ids } };
    },
    'clip.preprocess': inputs => {
      const r = inputs.image as RawTensor;
      return { pixel_values: clipPreprocess(imageFromHwc(r.data as Uint8Array, r.shape), Number(inputs.resolution ?? 224), 'openai') };
    },
    'clip.encode_image': (inputs, ctx) => ({ image_embeds: tf.tidy(() => model(ctx).encodeImage(pixels(inputs.pixel_values))) }),
    'clip.encode_text': (inputs, ctx) => ({ text_embeds: tf.tidy(() => model(ctx).encodeText(ids(inputs.input_ids))) }),
    'clip.logits': (inputs, ctx) => ({ logits_per_image: tf.tidy(() => model(ctx).logits(pixels(inputs.pixel_values), ids(inputs.input_ids))) }),
    'clip.dpad_similarity': (inputs, ctx) => {
      const r = inputs.image as RawTensor;
      const m = model(ctx);
      const { roi, aoi } = dpadScores(m, tokenizer(ctx, 'hf'), imageFromHwc(r.data as Uint8Array, r.shape), String(inputs.ground_truth), String(inputs.response));
      const R = m.config.vision.image;
      const D = m.config.embed;
      const idsOut = roi.inputIds ?? aoi.inputIds;
      const out: Record<string, OutputValue | undefined> = {
        s_roi: roi.score,
        s_aoi: aoi.score,
        clip_reward: discriminativeReward({ s1: roi.score, s2: aoi.score }, 'scaled').value,
        input_ids: idsOut ? { shape: [idsOut.length], data: Int32Array.from(idsOut) } : undefined,
        roi_pixel_values: f32(roi.pixelValues, [1, 3, R, R]),
        aoi_pixel_values: f32(aoi.pixelValues, [1, 3, R, R]),
        text_embeds: f32(roi.textEmbeds ?? aoi.textEmbeds, [1, D]),
        roi_image_embeds: f32(roi.imageEmbeds, [1, D]),
      };
      return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as Record<string, OutputValue>;
    },
  },
  teardown: ctx => (ctx.state.get('model') as ClipModel | undefined)?.dispose(),
};
