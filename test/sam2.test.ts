import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { sam2ConfigFrom, SAM2_HIERA_L, SAM2_HIERA_T } from '../src/models/sam2/config.ts';
import { convertSam2 } from '../src/models/sam2/convert.ts';
import { Sam2Image } from '../src/models/sam2/model.ts';
import { sinePositionEncoding } from '../src/models/sam2/position_encoding.ts';
import { Sam2Predictor, toModelFrame } from '../src/models/sam2/predictor.ts';
import { sam2Preprocess } from '../src/models/sam2/preprocess.ts';
import { configForCheckpoint, loadSam2 } from '../src/models/sam2/weights.ts';
import { interpolationMatrix } from '../src/nn/interpolate.ts';
import type { ImageU8 } from '../src/io/resample.ts';
import { FIXTURES } from './helpers/setup.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-sam2-'));
const fixture = (n: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, n, 'fixture.json'), 'utf8'));

function fixtureImage(n: string): ImageU8 {
  const t = SafetensorsFile.open(path.join(FIXTURES, n, 'tensors.safetensors'));
  const r = t.read('image/u8');
  t.close();
  return { height: r.shape[0], width: r.shape[1], channels: 3, data: r.data as Uint8Array };
}

test('converter round-trip: the official .pt becomes safetensors that predict the same masks', () => {
  const f = fixture('sam2-tiny-pt');
  const cfg = sam2ConfigFrom(f.config);
  const out = path.join(tmp, 'sam2-tiny');
  const r = convertSam2({ from: path.join(FIXTURES, 'sam2-tiny-pt', 'weights.pt'), out, config: cfg });
  assert.ok(r.ignored > 0, 'video-only tensors are left out');
  const a = loadSam2(out);
  const b = loadSam2(path.join(FIXTURES, 'sam2-tiny-pt', 'weights.pt'), cfg);
  const img = fixtureImage('sam2-tiny-pt');
  const pa = new Sam2Predictor(a);
  const pb = new Sam2Predictor(b);
  pa.setImage(img);
  pb.setImage(img);
  const box = [10, 12, 60, 70];
  const ra = pa.predict({ box, multimask: true });
  const rb = pb.predict({ box, multimask: true });
  assert.equal(ra.scores, rb.scores);
  assert.equal(Array.from(ra.masks[0]), Array.from(rb.masks[0]));
  pa.dispose(); pb.dispose(); a.dispose(); b.dispose();
  // the config may also come as a file: the hydra tree as JSON (or the official .yaml)
  const cf = path.join(tmp, 'tiny-hydra.json');
  fs.writeFileSync(cf, JSON.stringify(f.config));
  const r2 = convertSam2({ from: path.join(FIXTURES, 'sam2-tiny-pt', 'weights.pt'), out: path.join(tmp, 'sam2-tiny-2'), config: cf });
  assert.equal(r2.config, cfg);
  assert.throws(() => convertSam2({ from: path.join(FIXTURES, 'sam2-tiny-pt', 'weights.pt'), out: path.join(tmp, 'x'), config: 'sam2_hiera_huge' }), /unknown SAM2 model 'sam2_hiera_huge' \(known: sam2_hiera_t, .*, or a config \.yaml \/ \.json\)/);
});

test('a checkpoint of another model size is refused with the mismatched keys', () => {
  const f = fixture('sam2-tiny-st');
  const enc = f.config.model.image_encoder;
  const tree = { ...f.config, model: { ...f.config.model, image_encoder: { ...enc, trunk: { ...enc.trunk, embed_dim: 12 }, neck: { ...enc.neck, backbone_channel_list: [96, 48, 24, 12] } } } };
  const wrong = sam2ConfigFrom(tree);
  assert.throws(() => loadSam2(path.join(FIXTURES, 'sam2-tiny-st', 'weights.safetensors'), wrong), /loaded as hiera embed_dim 12, stages \[1,1,4,1\]: is it a checkpoint of this size\?\): weights do not fit the model: shape mismatch 98 \(image_encoder\.neck\.convs\.0\.conv\.weight: expected \[32,96,1,1\], got \[32,64,1,1\]/);
  assert.is(configForCheckpoint('/x/sam2.1_hiera_large.pt'), SAM2_HIERA_L);
  assert.is(configForCheckpoint('sam2_hiera_tiny.pt'), SAM2_HIERA_T);
  // no config: the fixture's shapes are no released size and "weights.safetensors" names none
  assert.throws(() => loadSam2(path.join(FIXTURES, 'sam2-tiny-st', 'weights.safetensors')), /weights\.safetensors: cannot tell the model size: the weights \(hiera embed_dim 8, stages \[1,1,4,1\], neck d_model 32\) match no released SAM2 size and the file name none either; pass a config/);
});

test('predictor: many prompts on one encoding, prompts outside the image as the official predictor, errors, no leaks', () => {
  const f = fixture('sam2-tiny-st');
  const m = loadSam2(path.join(FIXTURES, 'sam2-tiny-st', 'weights.safetensors'), sam2ConfigFrom(f.config));
  const p = new Sam2Predictor(m);
  assert.throws(() => p.predict({ box: [0, 0, 5, 5] }), /call setImage before predict/);
  const img = fixtureImage('sam2-tiny-st');
  p.setImage(img);
  const before = tf.memory().numTensors;
  const r1 = p.predict({ box: [5, 5, 40, 40], points: [[20, 20], [30, 30]], labels: [1, 1], multimask: true });
  const r2 = p.predict({ points: [[10, 10]], labels: [1], multimask: false });
  assert.is(tf.memory().numTensors, before, 'predict leaks nothing');
  assert.is(r1.masks.length, 3);
  assert.is(r2.masks.length, 1);
  assert.is(r1.masks[0].length, img.width * img.height);
  assert.throws(() => p.predict({}), /no prompt/);
  assert.throws(() => p.predict({ points: [[1, 3]], labels: [] }), /need as many labels/);
  assert.throws(() => p.predict({ points: [[Number.NaN, 3]], labels: [1] }), /point \[null,3\] must be 2 finite numbers \[x, y\]/);
  assert.throws(() => p.predict({ box: [0, 0, 5] }), /box \[0,0,5\] must be 4 finite numbers \[x1, y1, x2, y2\]/);
  assert.throws(() => p.predict({ points: [[1, 3]], labels: [7] }), /point label 7 is not one of -1, 0, 1, 2, 3/);
  // outside the image (negative, beyond W / H): only normalised by the original size, as _prep_prompts does
  const W = img.width;
  const H = img.height;
  const S = m.config.image_size;
  const box = [-12, 3, W + 30, H + 7];
  const pts = [[-1, 3], [W + 5, H * 2]];
  const r3 = p.predict({ box, points: pts, labels: [1, 0], multimask: false });
  const enc = p.predict({ box: [5, 5, 6, 6], multimask: false }); // a different prompt gives different scores
  assert.not.equal(r3.scores, enc.scores);
  const feats = m.encodeImage(tf.tidy(() => sam2Preprocess(img, S)));
  const direct = tf.tidy(() => {
    const o = m.decode(feats, {
      boxes: tf.tensor2d([[(-12 / W) * S, (3 / H) * S, ((W + 30) / W) * S, ((H + 7) / H) * S]]),
      pointCoords: tf.tensor3d([[[(-1 / W) * S, (3 / H) * S], [((W + 5) / W) * S, ((H * 2) / H) * S]]]),
      pointLabels: Int32Array.from([1, 0]),
    }, false);
    return o.iouPredictions.dataSync()[0];
  });
  tf.dispose([feats.imageEmbed, feats.highRes0, feats.highRes1]);
  assert.ok(Math.abs(r3.scores[0] - direct) < 1e-6, `score ${r3.scores[0]} vs ${direct}`);
  assert.equal(toModelFrame(-1, 3, W, H, S), [Math.fround(Math.fround(-1 / W) * S), Math.fround(Math.fround(3 / H) * S)]);
  p.dispose();
  m.dispose();
});

test('chunked blocks: the trunk gives the same features and gradients with tiny chunks, and leaks nothing', () => {
  const f = fixture('sam2-tiny-st');
  const m = loadSam2(path.join(FIXTURES, 'sam2-tiny-st', 'weights.safetensors'), sam2ConfigFrom(f.config));
  const trunk = m.image_encoder.trunk;
  const S = m.config.image_size;
  const px = tf.randomNormal([2, 3, S, S], 0, 1, 'float32', 3) as tf.Tensor4D;
  const vars = [...m.trainableParameters()].filter(([n]) => n.includes('trunk.blocks.1.')).map(([, v]) => v);
  assert.ok(vars.length > 0);
  const run = (chunk: number) => {
    trunk.chunkElements = chunk;
    const before = tf.memory().numTensors;
    const feats = trunk.forward(px);
    assert.is(tf.memory().numTensors, before + feats.length, `chunk ${chunk}: only the stage outputs remain`);
    const data = feats.map(t => Array.from(t.dataSync()));
    tf.dispose(feats);
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.addN(trunk.forward(px).map(t => tf.sum(tf.square(t)))) as tf.Scalar), vars);
    const g = Object.values(grads).map(t => Array.from(t.dataSync()));
    tf.dispose([value, ...Object.values(grads)]);
    return { data, g };
  };
  const whole = run(1 << 30);
  const tiny = run(1 << 13); // several windows / token rows per chunk
  trunk.chunkElements = 1 << 30;
  const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.map((x, i) => Math.max(...x.map((v, j) => Math.abs(v - b[i][j])))));
  assert.ok(maxDiff(whole.data, tiny.data) < 1e-5, `features differ by ${maxDiff(whole.data, tiny.data)}`);
  const gmax = Math.max(...whole.g.map(x => Math.max(...x.map(Math.abs))));
  assert.ok(maxDiff(whole.g, tiny.g) < 1e-4 * gmax, `gradients differ by ${maxDiff(whole.g, tiny.g)} of ${gmax}`);
  px.dispose();
  m.dispose();
});

test('interpolation matrices: rows sum to one and bicubic uses A = -0.75', () => {
  for (const mode of ['bicubic', 'bilinear', 'bilinear-aa', 'nearest'] as const) {
    const m = interpolationMatrix(7, 16, mode);
    for (let r = 0; r < 16; r++) {
      let s = 0;
      for (let c = 0; c < 7; c++) s += m[r * 7 + c];
      assert.ok(Math.abs(s - 1) < 1e-6, `${mode} row ${r} sums to ${s}`);
    }
  }
  // upsampling x2 at output 1: source 0.25 -> taps at -1..2 with t = 0.25
  const m = interpolationMatrix(4, 8, 'bicubic');
  const t = 0.25;
  const a = -0.75;
  const w1 = ((a + 2) * t - (a + 3)) * t * t + 1;
  assert.ok(Math.abs(m[1 * 4 + 0] - (((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a + w1)) < 1e-6);
});

test('sine position encoding: sin/cos of normalised positions, y block first', () => {
  const pe = sinePositionEncoding(2, 4, 8).arraySync()[0];
  const scale = 2 * Math.PI;
  // channel 0: sin(y_embed / 1), y_embed = 1 / (2 + 1e-6) * 2π for row 0
  assert.ok(Math.abs(pe[0][0][0] - Math.sin((1 / (2 + 1e-6)) * scale)) < 1e-5);
  // channel 1: cos of the same argument (dim_t pairs share a temperature power)
  assert.ok(Math.abs(pe[1][1][3] - Math.cos((2 / (2 + 1e-6)) * scale)) < 1e-5);
  // channel 4 (x block): sin(x_embed), column 3 -> 4 / (4 + 1e-6) * 2π
  assert.ok(Math.abs(pe[4][0][3] - Math.sin((4 / (4 + 1e-6)) * scale)) < 1e-5);
});

test.run();
