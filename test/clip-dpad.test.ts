import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import type { ImageU8 } from '../src/io/resample.ts';
import type { ClipConfig } from '../src/models/clip/config.ts';
import { dpadCaption, dpadGroundTruthBox, dpadScores, dpadSimilarity, pilCrop } from '../src/models/clip/dpad.ts';
import { ClipModel } from '../src/models/clip/model.ts';
import { ClipScorer } from '../src/models/clip/scorer.ts';
import { pyIntOfDigits, pyRound, pyStrip } from '../src/models/clip/text.ts';
import { ClipTokenizer, hfNormalize } from '../src/models/clip/tokenizer.ts';
import { clipConfigFromOpenAIWeights, loadClip, resolveClipConfig } from '../src/models/clip/weights.ts';
import { FIXTURES } from './helpers/setup.ts';

const DIR = path.join(FIXTURES, 'clip-scorer-public');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-clip-dpad-'));
const bpe = path.join(DIR, 'bpe_simple_vocab_16e6.txt.gz');
const openai = ClipTokenizer.fromBpeFile(bpe);
const hf = openai.withNormalization('hf');
const id = (piece: string) => openai.encoder.get(piece)!;

function gradient(w: number, h: number): ImageU8 {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    data[i] = (x * 3) % 256; data[i + 1] = (y * 5) % 256; data[i + 2] = ((x + y) * 7) % 256;
  }
  return { width: w, height: h, channels: 3, data };
}

test('HF text path: no html unescape, no ftfy, Oniguruma whitespace, per-character lower-case, NFC', () => {
  assert.equal(openai.encode('cup &amp; saucer'), openai.encode('cup & saucer'));
  assert.equal(hf.encode('cup &amp; saucer'), [id('cup</w>'), id('&</w>'), id('amp</w>'), id(';</w>'), id('saucer</w>')]);
  // a curly apostrophe stays curly (ftfy would straighten it)
  assert.equal(openai.encode('don\u2019t'), openai.encode("don't"));
  assert.not.equal(hf.encode('don\u2019t'), hf.encode("don't"));
  // U+001C: ftfy removes it; it is Python whitespace but not Oniguruma's, so HF keeps it as a piece
  assert.equal(openai.encode('a\x1cb'), openai.encode('ab'));
  assert.equal(hf.encode('a\x1cb'), [id('a</w>'), id('\u011c</w>'), id('b</w>')]);
  assert.equal(hf.encode('a\u3000\n\t b'), hf.encode('a b'));
  assert.is(hfNormalize('ΟΔΟΣ'), 'οδοσ', 'no final sigma: each char is lower-cased alone');
  assert.is('ΟΔΟΣ'.toLowerCase(), 'οδος');
  assert.is(hfNormalize('Cafe\u0301  AU\nLAIT'), 'caf\u00e9 au lait');
  assert.equal(hf.ids('A Red Apple'), [49406, id('a</w>'), id('red</w>'), id('apple</w>'), 49407]);
});

test('HF text path: special tokens are split off the raw text, case-sensitively', () => {
  assert.equal(hf.encode('a<|endoftext|>b'), [id('a</w>'), 49407, id('b</w>')]);
  assert.equal(hf.encode('<|startoftext|>'), [49406]);
  assert.not.ok(hf.encode('<|ENDOFTEXT|>').includes(49407));
  assert.ok(openai.encode('<|ENDOFTEXT|>').includes(49407), 'OpenAI matches them after lower-casing');
  assert.throws(() => new ClipTokenizer(openai.encoder, [], { normalization: 'x' as 'hf' }), /^clip tokenizer: normalization 'x' is not 'openai' or 'hf'$/);
});

test('ground-truth box, caption and Pillow crop follow the reference', () => {
  assert.equal(dpadGroundTruthBox('<box>(1,2),(30,40)</box><box>(5,6),(7,8)</box>'), [1, 2, 30, 40]);
  assert.is(dpadGroundTruthBox('<box>(1, 2),(30,40)</box>'), null);
  assert.is(dpadGroundTruthBox('<box>(-1,2),(30,40)</box>'), null);
  assert.equal(dpadGroundTruthBox('<box>(\u0661\u0662,2),(30,40)</box>'), [12, 2, 30, 40], 'Python \\d takes any decimal digit');
  assert.is(pyIntOfDigits('\uff19\uff10'), 90);
  assert.is(pyIntOfDigits('\u{1D7D8}\u{1D7E2}'), 0, 'stacked mathematical digit blocks: double-struck 0, sans-serif 0');
  assert.is(dpadCaption('<caption> a\nb \x1c</caption><caption>c</caption>'), 'a\nb');
  assert.is(dpadCaption('<caption></caption>'), '');
  assert.is(dpadCaption('<caption>open'), null);
  assert.is(pyStrip('\x1f a \u3000'), 'a');
  assert.equal([0.5, 1.5, 2.5, -2.5, -3.5, 2.4].map(pyRound), [0, 2, 2, -2, -4, 2]);
  const img = gradient(10, 8);
  const c = pilCrop(img, [8, 6, 12, 9])!;
  assert.equal([c.width, c.height], [4, 3]);
  assert.equal(Array.from(c.data.subarray(0, 3)), Array.from(img.data.subarray((6 * 10 + 8) * 3, (6 * 10 + 8) * 3 + 3)));
  assert.equal(Array.from(c.data.subarray(2 * 4 * 3)), new Array(4 * 3).fill(0), 'the row below the image is black');
  assert.equal(Array.from(c.data.subarray(2 * 3, 3 * 3)), [0, 0, 0], 'the column right of the image is black');
  assert.equal([pilCrop(img, [0.5, 0, 2.5, 1])!.width], [2], 'coordinates rounded half to even');
  assert.is(pilCrop(img, [5, 0, 4, 3]), null);
  assert.is(pilCrop(img, [0, 3, 4, 2]), null);
  assert.throws(() => pilCrop(img, [0, 0, 1]), /^crop: box \[0,0,1\] is not four finite numbers$/);
});

test('dpad similarity reproduces the fixture, and the batched scorer agrees with it', async () => {
  const fx = JSON.parse(fs.readFileSync(path.join(DIR, 'fixture.json'), 'utf8'));
  const model = loadClip(DIR);
  const t = SafetensorsFile.open(path.join(DIR, 'tensors.safetensors'));
  const c = fx.cases[0];
  const raw = t.read(c.inputs.image.slice('tensor:'.length));
  const img: ImageU8 = { width: raw.shape[1], height: raw.shape[0], channels: 3, data: raw.data as Uint8Array };
  const before = tf.memory().numTensors;
  const { roi, aoi } = dpadScores(model, hf, img, c.inputs.ground_truth, c.inputs.response);
  assert.is(tf.memory().numTensors, before, 'no tensors leak');
  assert.ok(Math.abs(roi.score - c.outputs.s_roi.value) < 2e-5, `s_roi ${roi.score}`);
  assert.ok(Math.abs(aoi.score - c.outputs.s_aoi.value) < 2e-5, `s_aoi ${aoi.score}`);
  assert.equal(roi.inputIds, Array.from(t.read(c.outputs.input_ids.tensor).data));
  const scorer = ClipScorer.load(DIR);
  const box = dpadGroundTruthBox(c.inputs.ground_truth)!;
  const [s] = await scorer.scores(img, box, [dpadCaption(c.inputs.response)!]);
  assert.ok(Math.abs(s!.s1 - roi.score) < 1e-5 && Math.abs(s!.s2 - aoi.score) < 1e-5, `batched ${JSON.stringify(s)}`);
  // the zero paths, in the reference's order: box, caption, then the processor
  const r = 'x<caption>a dog</caption>';
  assert.equal([dpadSimilarity(model, hf, img, 'no box', r).score, dpadSimilarity(model, hf, img, 'no box', r).reason], [0, 'ground truth has no <box>(x1,y1),(x2,y2)</box>']);
  assert.is(dpadSimilarity(model, hf, img, '<box>(9,0),(3,5)</box>', r).score, 0);
  assert.is(dpadSimilarity(model, hf, img, '<box>(3,0),(3,5)</box>', 'no caption').score, 0);
  assert.throws(() => dpadSimilarity(model, hf, img, '<box>(3,0),(3,5)</box>', r), /^dpad similarity: the ground-truth box of "<box>\(3,0\),\(3,5\)<\/box>" crops an empty 0x5 image \(the reference processor fails on it\)$/);
  const long = dpadSimilarity(model, hf, img, null, `<caption>${Array(76).fill('dog').join(' ')}</caption>`);
  assert.equal([long.score, long.inputIds!.length, long.textEmbeds, long.pixelValues!.length], [0, 78, null, 3 * 48 * 48]);
  const fits = dpadSimilarity(model, hf, img, null, `<caption>${Array(75).fill('dog').join(' ')}</caption>`);
  assert.ok(fits.score !== 0 && fits.inputIds!.length === 77);
  t.close();
  scorer.dispose();
  model.dispose();
});

function tinyConfig(width: number, textWidth: number): ClipConfig {
  return {
    embed: 12,
    vision: { image: 32, patch: 8, width, layers: 2, heads: width / 64, mlp: 4 * width },
    text: { context: 9, vocab: 50, width: textWidth, layers: 3, heads: textWidth / 64, mlp: 4 * textWidth },
    eps: 1e-5,
  };
}

function writeOpenAI(cfg: ClipConfig, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const m = new ClipModel(cfg);
  const params = m.exportTensors();
  const file = path.join(dir, 'weights.safetensors');
  writeSafetensors(file, params);
  for (const p of params.values()) p.dispose();
  m.dispose();
  return file;
}

test('OpenAI-layout weights give their configuration, as build_model reads it', () => {
  const cfg = tinyConfig(128, 64);
  const file = writeOpenAI(cfg, path.join(tmp, 'oa'));
  const src = SafetensorsFile.open(file);
  assert.equal(clipConfigFromOpenAIWeights(src), cfg);
  src.close();
  assert.equal(resolveClipConfig(path.join(tmp, 'oa')), cfg, 'a directory without config.json');
  const m = loadClip(file);
  assert.equal(m.config, cfg);
  m.dispose();
  const small = writeOpenAI({ ...tinyConfig(128, 64), text: { ...tinyConfig(128, 64).text, width: 24, heads: 3, mlp: 96 } }, path.join(tmp, 'oa-small'));
  const s2 = SafetensorsFile.open(small);
  assert.throws(() => clipConfigFromOpenAIWeights(s2), new RegExp(`^${small.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: text width 24 gives 0 heads by build_model's width // 64 \\(pass a config\\)$`));
  s2.close();
  // the tiny OpenAI fixture has 3 text heads of width 8, which build_model cannot express
  assert.throws(() => resolveClipConfig(path.join(FIXTURES, 'clip-tiny-openai', 'weights.safetensors')), /: text width 24 gives 0 heads by build_model's width \/\/ 64 \(pass a config\)$/);
});

test.run();
