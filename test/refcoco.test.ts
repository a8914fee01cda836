import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeRle, refCocoIndex, refCocoSamples, segmentationMask } from '../src/data/refcoco.ts';
import type { Skipped } from '../src/data/reasonseg.ts';
import type { EvalSample } from '../src/eval/evaluate.ts';
import { pickleData, rleString } from './helpers/pickle.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-refcoco-'));

test('COCO RLE: uncompressed and compressed counts decode to the same column-major mask', () => {
  // 3 x 4 (h x w) mask, column-major runs: 2 off, 5 on, 5 off
  const counts = [2, 5, 5];
  const a = decodeRle(counts, 3, 4);
  const b = decodeRle(rleString(counts), 3, 4);
  assert.equal(Array.from(a), Array.from(b));
  // column-major index 2..6 -> (x0,y2) (x1,y0) (x1,y1) (x1,y2) (x2,y0)
  const on = [...a].flatMap((v, i) => (v ? [[i % 4, Math.floor(i / 4)]] : []));
  assert.equal(on.sort(), [[0, 2], [1, 0], [1, 1], [1, 2], [2, 0]].sort());
  const long = [100, 37, 900, 12, 3];
  assert.equal(Array.from(decodeRle(rleString(long), 33, 32)), Array.from(decodeRle(long, 33, 32)));
  assert.throws(() => decodeRle([2, 50], 3, 4), /overruns/);
  assert.throws(() => segmentationMask({ counts: [12], size: [4, 4] }, 4, 3), /differs/);
  assert.throws(() => segmentationMask([[1, 2, 3]], 4, 4), /polygon/);
});

async function writeRefer(root: string) {
  const ann = path.join(root, 'refcocog');
  const imgs = path.join(root, 'train2014');
  fs.mkdirSync(ann, { recursive: true });
  fs.mkdirSync(imgs, { recursive: true });
  await sharp({ create: { width: 20, height: 10, channels: 3, background: 'blue' } }).png().toFile(path.join(imgs, 'COCO_1.png'));
  await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).png().toFile(path.join(imgs, 'COCO_2.png'));
  const instances = {
    images: [{ id: 1, file_name: 'COCO_1.png', width: 20, height: 10 }, { id: 2, file_name: 'COCO_2.png', width: 9, height: 8 }, { id: 3, file_name: 'missing.png', width: 4, height: 4 }],
    annotations: [
      { id: 11, image_id: 1, segmentation: [[2, 2, 8, 2, 8, 6, 2, 6]] },
      { id: 12, image_id: 1, segmentation: { counts: rleString([30, 5, 165]), size: [10, 20] } },
      { id: 13, image_id: 2, segmentation: [[0, 0, 4, 0, 4, 4]] },
      { id: 14, image_id: 3, segmentation: [[0, 0, 3, 0, 3, 3]] },
    ],
  };
  fs.writeFileSync(path.join(ann, 'instances.json'), JSON.stringify(instances));
  const ref = (refId: number, annId: number, split: string, sents: string[]) => ({
    ref_id: refId, ann_id: annId, image_id: 0, split, category_id: 1, file_name: `x_${annId}.jpg`, sent_ids: sents.map((_, i) => refId * 10 + i),
    sentences: sents.map((s, i) => ({ sent: s, raw: s, sent_id: refId * 10 + i, tokens: s.split(' ') })),
  });
  const refs = [
    ref(1, 11, 'val', ['the blue box on the left', 'a square']),
    ref(2, 12, 'val', ['the thin stripe']),
    ref(3, 11, 'train', ['not in val']),
    ref(4, 99, 'val', ['dangling annotation']),
    ref(5, 13, 'val', ['image size disagrees']),
    ref(6, 14, 'val', ['image file missing']),
    ref(7, 11, 'val', ['']),
  ];
  fs.writeFileSync(path.join(ann, 'refs(umd).p'), pickleData(refs));
  return { annDir: ann, imageDir: imgs };
}

test('RefCOCO layout (refs pickle + instances.json + images): one sample per sentence, bad refs skipped with reasons', async () => {
  const o = await writeRefer(path.join(tmp, 'refer'));
  const skipped: Skipped[] = [];
  const entries = refCocoIndex({ ...o, split: 'val' }, skipped);
  assert.equal(entries.map(e => e.id), ['1-10', '1-11', '2-20', '5-50', '6-60']);
  const got: EvalSample[] = [];
  for await (const s of refCocoSamples(o, entries, skipped)) got.push(s);
  assert.equal(got.map(s => s.id), ['1-10', '1-11', '2-20']);
  assert.is(got[0].query, 'the blue box on the left');
  assert.is(got[0].image.width, 20);
  const area = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);
  assert.is(area(got[0].mask), 35, 'polygon [2..8] x [2..6] with its outline');
  assert.is(got[0].mask[4 * 20 + 5], 1);
  assert.is(area(got[2].mask), 5);
  // column-major run 30..34 is column 3, rows 0..4
  for (let y = 0; y < 5; y++) assert.is(got[2].mask[y * 20 + 3], 1);
  const reasons = Object.fromEntries(skipped.map(s => [s.id, s.reason]));
  assert.match(reasons['ref 4'], /ann_id 99/);
  assert.match(reasons['5-50'], /instances.json says 9x8/);
  assert.match(reasons['6-60'], /not found/);
  assert.match(reasons['ref 7 sentence 70'], /empty sentence/);
  assert.is(skipped.length, 4);
});

test('RefCOCO: a pickle that asks for a global is refused, a missing refs file is named', async () => {
  const dir = path.join(tmp, 'evil');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'instances.json'), '{"images": [], "annotations": []}');
  const enc = new TextEncoder();
  fs.writeFileSync(path.join(dir, 'refs(umd).p'), Uint8Array.from([0x80, 2, 0x63, ...enc.encode('os\nsystem\n'), 0x58, 2, 0, 0, 0, 0x6c, 0x73, 0x85, 0x52, 0x2e]));
  assert.throws(() => refCocoIndex({ annDir: dir, imageDir: dir }, []), /allowlist/);
  assert.throws(() => refCocoIndex({ annDir: dir, imageDir: dir, splitBy: 'google' }, []), /refs\(google\)\.p not found/);
});

test.run();
