/** Golden adapter for the `sam2` family: encoder, decoder, the full predict path and the image predictor. */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../../src/io/dtypes.ts';
import { imageFromHwc } from '../../../src/io/image.ts';
import { openCheckpoint } from '../../../src/io/checkpoint.ts';
import { sam2ConfigFrom } from '../../../src/models/sam2/config.ts';
import { Sam2Image, type ImageFeatures } from '../../../src/models/sam2/model.ts';
import { Sam2Predictor } from '../../../src/models/sam2/predictor.ts';
import { sam2Preprocess } from '../../../src/models/sam2/preprocess.ts';
import { loadSam2Weights } from '../../../src/models/sam2/weights.ts';
import type { FamilyAdapter, FixtureContext } from '../harness.ts';

function model(ctx: FixtureContext): Sam2Image {
  let m = ctx.state.get('model') as Sam2Image | undefined;
  if (!m) {
    const fx = ctx.fixture;
    m = new Sam2Image(sam2ConfigFrom(fx.config!, path.join(ctx.dir, 'fixture.json')));
    const src = openCheckpoint(path.join(ctx.dir, fx.weights!.file));
    try {
      loadSam2Weights(m, src);
    } finally {
      src.close();
    }
    ctx.state.set('model', m);
  }
  return m;
}

const t4 = (r: unknown) => { const x = r as RawTensor; return tf.tensor4d(x.data as Float32Array, x.shape as [number, number, number, number]); };

function prompts(inputs: Record<string, unknown>) {
  const pc = inputs.point_coords as RawTensor | undefined;
  const pl = inputs.point_labels as RawTensor | undefined;
  const bx = inputs.boxes as RawTensor | undefined;
  return {
    pointCoords: pc ? tf.tensor3d(pc.data as Float32Array, pc.shape as [number, number, number]) : null,
    pointLabels: pl ? Int32Array.from(pl.data) : null,
    boxes: bx ? tf.tensor2d(bx.data as Float32Array, bx.shape as [number, number]) : null,
  };
}

function decodeOut(m: Sam2Image, f: ImageFeatures, inputs: Record<string, unknown>) {
  return tf.tidy(() => {
    const o = m.decode(f, prompts(inputs), Boolean(inputs.multimask_output));
    return { low_res_masks: tf.clipByValue(o.lowResMasks, -32, 32), iou_predictions: o.iouPredictions };
  });
}

export const sam2Adapter: FamilyAdapter = {
  family: 'sam2',
  entries: {
    'sam2.preprocess': inputs => {
      const img = inputs.image as RawTensor;
      return { pixel_values: sam2Preprocess(imageFromHwc(img.data as Uint8Array, img.shape), Number(inputs.image_size)) };
    },
    'sam2.encode_image': (inputs, ctx) => {
      const px = t4(inputs.pixel_values);
      const f = model(ctx).encodeImage(px);
      px.dispose();
      return { image_embed: f.imageEmbed, high_res_feat0: f.highRes0, high_res_feat1: f.highRes1 };
    },
    'sam2.decode': (inputs, ctx) => {
      const f = { imageEmbed: t4(inputs.image_embed), highRes0: t4(inputs.high_res_feat0), highRes1: t4(inputs.high_res_feat1) };
      const out = decodeOut(model(ctx), f, inputs);
      tf.dispose([f.imageEmbed, f.highRes0, f.highRes1]);
      return out;
    },
    'sam2.predict': (inputs, ctx) => {
      const m = model(ctx);
      const px = t4(inputs.pixel_values);
      const f = m.encodeImage(px);
      const out = decodeOut(m, f, inputs);
      tf.dispose([px, f.imageEmbed, f.highRes0, f.highRes1]);
      return out;
    },
    'sam2.predict_image': (inputs, ctx) => {
      const img = inputs.image as RawTensor;
      const p = new Sam2Predictor(model(ctx));
      p.setImage(imageFromHwc(img.data as Uint8Array, img.shape));
      const pts = inputs.point_coords as RawTensor | undefined;
      const box = inputs.box as RawTensor | undefined;
      const points = pts ? Array.from({ length: pts.shape[0] }, (_, i) => [pts.data[i * 2], pts.data[i * 2 + 1]]) : null;
      const r = p.predict({
        box: box ? Array.from(box.data) : null, points,
        labels: inputs.point_labels ? Array.from((inputs.point_labels as RawTensor).data) : null,
        multimask: Boolean(inputs.multimask_output),
      });
      p.dispose();
      const all = new Uint8Array(r.masks.length * r.width * r.height);
      r.masks.forEach((mk, i) => all.set(mk, i * r.width * r.height));
      return { masks: { shape: [r.masks.length, r.height, r.width], data: all }, scores: r.scores };
    },
  },
  teardown: ctx => (ctx.state.get('model') as Sam2Image | undefined)?.dispose(),
};
