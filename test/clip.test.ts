import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { LoadError } from '../src/nn/module.ts';
import { clipConfigFrom } from '../src/models/clip/config.ts';
import { convertClip } from '../src/models/clip/convert.ts';
import { ClipModel } from '../src/models/clip/model.ts';
import { ClipScorer, scorerRoi } from '../src/models/clip/scorer.ts';
import { ClipTokenizer } from '../src/models/clip/tokenizer.ts';
import { loadClipWeights } from '../src/models/clip/weights.ts';
import type { ImageU8 } from '../src/io/resample.ts';
import { FIXTURES } from './helpers/setup.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-clip-'));
const fx = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'fixture.json'), 'utf8'));

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function testImage(w: number, h: number): ImageU8 {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    data[i] = x < w / 2 ? 220 : 20; data[i + 1] = (y * 7) % 256; data[i + 2] = 90;
  }
  return { width: w, height: h, channels: 3, data };
}

for (const name of ['clip-tiny-hf', 'clip-tiny-openai']) {
  test(`converter round-trip (${name}) reproduces the fixture's embeddings`, () => {
    const out = path.join(tmp, name);
    const f = fx(name);
    // clip-tiny-hf is a model directory (config.json + model.safetensors); clip-tiny-openai a weights file with its config in fixture.json
    const from = name.endsWith('hf') ? path.join(FIXTURES, name) : path.join(FIXTURES, name, f.weights.file);
    const r = convertClip({ from, out, config: name.endsWith('hf') ? undefined : f.config, vocab: path.join(FIXTURES, name, 'bpe_simple_vocab_16e6.txt.gz') });
    assert.is(r.layout, name.endsWith('hf') ? 'hf' : 'openai');
    assert.ok(fs.existsSync(path.join(out, 'config.json')) && fs.existsSync(path.join(out, 'bpe_simple_vocab_16e6.txt.gz')));
    const scorer = ClipScorer.load(out);
    const t = SafetensorsFile.open(path.join(FIXTURES, name, 'tensors.safetensors'));
    // the tensors the fixture's own encode_image / encode_text cases name
    const caseOf = (entry: string) => (f.cases as { entry: string; inputs: Record<string, string>; outputs: Record<string, { tensor: string }> }[]).find(c => c.entry === entry)!;
    const ci = caseOf('clip.encode_image');
    const ct = caseOf('clip.encode_text');
    const px = t.read(ci.inputs.pixel_values.slice('tensor:'.length));
    const want = t.read(ci.outputs.image_embeds.tensor);
    const got = tf.tidy(() => scorer.model.encodeImage(tf.tensor4d(px.data as Float32Array, px.shape as [number, number, number, number])).dataSync());
    assert.ok(maxAbs(got, want.data) < 1e-4, `max abs ${maxAbs(got, want.data)}`);
    const ids = t.read(ct.inputs.input_ids.slice('tensor:'.length));
    const wantT = t.read(ct.outputs.text_embeds.tensor);
    const gotT = tf.tidy(() => scorer.model.encodeText(tf.tensor2d(ids.data as Int32Array, ids.shape as [number, number], 'int32')).dataSync());
    assert.ok(maxAbs(gotT, wantT.data) < 1e-4);
    scorer.dispose();
    t.close();
  });
}

test('HF tokenizer files (vocab.json + merges.txt, tokenizer.json) give the same ids as the OpenAI vocabulary', () => {
  const bpe = path.join(FIXTURES, 'clip-tiny-openai', 'bpe_simple_vocab_16e6.txt.gz');
  const a = ClipTokenizer.fromBpeFile(bpe);
  const dir = path.join(tmp, 'hf-tok');
  fs.mkdirSync(dir, { recursive: true });
  const vocab = Object.fromEntries(a.encoder);
  const merges = zlib.gunzipSync(fs.readFileSync(bpe)).toString('utf8').split('\n').slice(1, 49152 - 256 - 2 + 1);
  fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
  fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n' + merges.join('\n') + '\n');
  const b = ClipTokenizer.fromHF(dir);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab, merges } }));
  const c = ClipTokenizer.fromHF(path.join(dir, 'tokenizer.json'));
  const texts = [...fx('clip-tiny-openai').cases[0].inputs.texts, ...fx('clip-tiny-hf').cases[0].inputs.texts];
  const ta = a.tokenize(texts);
  assert.equal(Array.from(b.tokenize(texts).ids), Array.from(ta.ids));
  assert.equal(Array.from(c.tokenize(texts).ids), Array.from(ta.ids));
  assert.is(a.decode(a.encode('a photo of a cat')).trim(), 'a photo of a cat');
});


test('wrong-shaped weights are refused with every offending key', () => {
  const f = fx('clip-tiny-hf');
  const cfg = clipConfigFrom({ ...f.config, projection_dim: 8 }, 'test');
  const m = new ClipModel(cfg);
  const src = SafetensorsFile.open(path.join(FIXTURES, 'clip-tiny-hf', 'model.safetensors'));
  try {
    loadClipWeights(m, src);
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, LoadError);
    const tw = f.config.text_config.hidden_size;
    const vw = f.config.vision_config.hidden_size;
    const pd = f.config.projection_dim;
    assert.is((e as Error).message, `${src.path}: weights do not fit the model: shape mismatch 2 (text_projection: expected [${tw},8], got [${tw},${pd}]; visual.proj: expected [${vw},8], got [${vw},${pd}])`);
  } finally {
    src.close();
    m.dispose();
  }
});

function scorer(): ClipScorer {
  const dir = path.join(tmp, 'clip-tiny-hf');
  if (!fs.existsSync(path.join(dir, 'config.json'))) {
    convertClip({ from: path.join(FIXTURES, 'clip-tiny-hf'), out: dir });
  }
  return ClipScorer.load(dir);
}

test('scores: S1 vs crop, S2 vs whole image, SNR = S1/S2, the 77-token rule, batching', async () => {
  const s = scorer();
  const img = testImage(120, 90);
  const long = Array(80).fill('word').join(' ');
  const r = await s.scores(img, [10, 10, 60, 80], ['a red square', '', long]);
  assert.ok(r[0] && r[1], 'short and empty captions are scored');
  assert.is(r[2], null);
  assert.ok(Math.abs(r[0]!.snr - r[0]!.s1 / r[0]!.s2) < 1e-12);
  assert.ok(Math.abs(r[0]!.s1) <= 1 && Math.abs(r[0]!.s2) <= 1);
  const img2 = testImage(64, 200);
  const many = await s.scoreMany([{ image: img, box: [10, 10, 60, 80], texts: ['a red square'] }, { image: img2, box: [0, 0, 30, 30], texts: ['x', 'y'] }]);
  assert.ok(Math.abs(many[0][0]!.s1 - r[0]!.s1) < 1e-5, 'batched equals single');
  const single = await s.scores(img2, [0, 0, 30, 30], ['y']);
  assert.ok(Math.abs(many[1][1]!.s2 - single[0]!.s2) < 1e-5);
  const t = await s.scores(img, [10, 10, 60, 80], [long], { truncate: true });
  assert.ok(t[0] !== null, 'think text is truncated, not dropped');
  // 75 words -> 77 tokens fits; 76 -> 78 does not
  assert.ok(s.fits(Array(75).fill('word').join(' ')));
  assert.not.ok(s.fits(Array(76).fill('word').join(' ')));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await s.scores(img, [10, 10, 60, 80], ['a', 'b']);
  assert.is(tf.memory().numTensors, before, 'no tensors leak across calls');
  s.dispose();
});

test('boxes are cropped as Pillow does: black outside the image, S1 = 0 for a reversed box', async () => {
  const s = scorer();
  const img = testImage(50, 50);
  const out = scorerRoi(img, [40, 40, 60, 70])!;
  assert.equal([out.width, out.height], [20, 30]);
  assert.is(out.data[(0 * 20 + 0) * 3], img.data[(40 * 50 + 40) * 3], 'inside pixels are the image');
  assert.ok(out.data.subarray((12 * 20) * 3).every(v => v === 0), 'rows below the image are black');
  const outside = await s.scores(img, [60, 60, 80, 80], ['a']);
  const black = await s.scores({ width: 20, height: 20, channels: 3, data: new Uint8Array(20 * 20 * 3) }, [0, 0, 20, 20], ['a']);
  assert.ok(Math.abs(outside[0]!.s1 - black[0]!.s1) < 1e-6, 'a box wholly outside scores a black crop');
  const rev = await s.scores(img, [30, 10, 20, 40], ['a']);
  assert.is(rev[0]!.s1, 0);
  assert.ok(rev[0]!.s2 !== 0);
  s.dispose();
});

test('bad input: unreadable image, empty box, non-finite box', async () => {
  const s = scorer();
  await assert_rejects(() => s.scores(path.join(tmp, 'missing.png'), [0, 0, 5, 5], ['a']), /missing\.png: image file not found/);
  const junk = path.join(tmp, 'junk.png');
  fs.writeFileSync(junk, 'not an image');
  await assert_rejects(() => s.scores(junk, [0, 0, 5, 5], ['a']), /junk\.png: cannot decode the image/);
  await assert_rejects(() => s.scores(testImage(50, 50), [5, 5, 5, 9], ['a']), /^scorer: box \[5,5,5,9\] crops an empty 0x4 region$/);
  assert.throws(() => scorerRoi(testImage(50, 50), [0, NaN, 5, 9]), /^scorer: box \[0,null,5,9\] is not four finite numbers$/);
  assert.throws(() => ClipScorer.load(path.join(tmp, 'nowhere')), new RegExp(`^${path.join(tmp, 'nowhere').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a CLIP model directory$`));
  s.dispose();
});

async function assert_rejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected rejection matching ${re}`);
}

test.run();
