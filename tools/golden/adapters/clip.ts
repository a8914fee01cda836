/** Golden adapter for the `clip` family: tokenizer, preprocessing, both towers and the logits. */
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
import type { FamilyAdapter, FixtureContext } from '../harness.ts';

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

function tokenizer(ctx: FixtureContext): ClipTokenizer {
  let t = ctx.state.get('tokenizer') as ClipTokenizer | undefined;
  if (!t) {
    t = ClipTokenizer.fromBpeFile(path.join(ctx.dir, ctx.fixture.assets?.vocab ?? 'bpe_simple_vocab_16e6.txt.gz'));
    ctx.state.set('tokenizer', t);
  }
  return t;
}

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
  },
  teardown: ctx => (ctx.state.get('model') as ClipModel | undefined)?.dispose(),
};
