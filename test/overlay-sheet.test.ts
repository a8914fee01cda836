import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ImageU8 } from '../src/io/resample.ts';
import { GT_COLOR, MIN_SIDE, maskOutline, overlayPng, overlaySheetPng, sheetLayout } from '../src/pipeline/overlay.ts';
import { percent, WorstSamples } from '../src/eval/worst.ts';
import { textWidth } from '../src/util/plot.ts';

function noise(w: number, h: number, seed = 7): ImageU8 {
  const data = new Uint8Array(w * h * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return { width: w, height: h, channels: 3, data };
}

function rectMask(w: number, h: number, [x1, y1, x2, y2]: number[]): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) m[y * w + x] = 1;
  return m;
}

async function raw(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** pixel (x, y) of the image region at (left, top) on the canvas */
const px = (c: { data: Buffer; width: number }, left: number, top: number, x: number, y: number) => [...c.data.subarray(((top + y) * c.width + left + x) * 3, ((top + y) * c.width + left + x) * 3 + 3)];
const ipx = (img: ImageU8, x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

test('overlayPng: the query goes in a band ABOVE the image and the caption in one BELOW; the image is pixel-identical', async () => {
  const img = noise(400, 300);
  const png = await overlayPng(img, { query: 'the cup on the left', caption: 'a red cup' });
  const L = sheetLayout([{ image: img }], { query: 'the cup on the left', caption: 'a red cup' });
  const c = await raw(png);
  assert.equal([c.width, c.height], [L.width, L.height]);
  assert.is(c.width, 400);
  assert.ok(L.panels[0].top > 0, 'title band above');
  assert.ok(c.height > L.panels[0].top + 300, 'caption band below');
  for (let y = 0; y < 300; y++) for (let x = 0; x < 400; x++) if (px(c, 0, L.panels[0].top, x, y).join() !== ipx(img, x, y).join()) assert.unreachable(`pixel ${x},${y} changed`);
  // text is really drawn (fonts found): the band holds light pixels
  let light = 0;
  for (let i = 0; i < L.panels[0].top * c.width; i++) if (c.data[i * 3] > 160) light++;
  assert.ok(light > 50, `query text rendered (${light} light pixels)`);
});

test('overlayPng: without text, no bands: an old-style call keeps the image size and only the mask is tinted', async () => {
  const img = noise(360, 330);
  const m = rectMask(360, 330, [100, 100, 200, 180]);
  const c = await raw(await overlayPng(img, { mask: m }));
  const L = sheetLayout([{ image: img, mask: m }]);
  assert.is(L.panels[0].top, 0);
  assert.equal([c.width, c.height], [360, 330 + L.legend.length * L.lineH + 2 * L.pad], 'only the legend band, below the image');
  assert.equal((await raw(await overlayPng(img, { legend: false }))).height, 330);
  let changedOutside = 0;
  let changedInside = 0;
  for (let y = 0; y < 330; y++) for (let x = 0; x < 360; x++) {
    const same = px(c, 0, 0, x, y).join() === ipx(img, x, y).join();
    if (m[y * 360 + x]) changedInside += same ? 0 : 1; else changedOutside += same ? 0 : 1;
  }
  assert.is(changedOutside, 0);
  assert.is(changedInside, 100 * 80);
});

test('overlayPng: the ground truth is outlined in its own colour; prediction box and points only touch their neighbourhood', async () => {
  const img = noise(320, 320);
  const gt = rectMask(320, 320, [40, 40, 120, 120]);
  const opts = { bbox: [200, 200, 260, 250], points: [[230, 225]], groundTruth: { mask: gt }, query: 'q', caption: 'c' };
  const L = sheetLayout([{ image: img, bbox: opts.bbox, points: opts.points, groundTruth: opts.groundTruth }], opts);
  const c = await raw(await overlayPng(img, opts));
  const top = L.panels[0].top;
  assert.equal(px(c, 0, top, 40, 80), GT_COLOR, 'GT outline on the mask edge');
  assert.equal(px(c, 0, top, 80, 40), GT_COLOR);
  assert.equal(px(c, 0, top, 80, 80), ipx(img, 80, 80), 'GT interior untouched');
  assert.equal(px(c, 0, top, 30, 80), ipx(img, 30, 80), 'outside the GT untouched');
  for (let y = 0; y < 320; y++) for (let x = 0; x < 320; x++) {
    const nearBox = x >= 194 && x <= 266 && y >= 194 && y <= 256;
    if (!nearBox && !gt[y * 320 + x] && px(c, 0, top, x, y).join() !== ipx(img, x, y).join()) assert.unreachable(`pixel ${x},${y} changed`);
  }
  assert.not.equal(px(c, 0, top, 230, 200), ipx(img, 230, 200), 'box drawn');
  assert.equal(L.entries.map(e => e.name), ['predicted box', 'points', 'ground-truth mask']);
});

test('overlayPng: a small image is enlarged by a whole factor (nearest) so the text is legible', async () => {
  const img = noise(64, 48);
  const L = sheetLayout([{ image: img }], { query: 'x' });
  assert.is(L.scale, Math.floor(MIN_SIDE / 64));
  const c = await raw(await overlayPng(img, { query: 'x' }));
  const s = L.scale;
  for (const [x, y] of [[0, 0], [63, 47], [10, 20]]) assert.equal(px(c, L.panels[0].left, L.panels[0].top, x * s + s - 1, y * s), ipx(img, x, y));
  assert.is(sheetLayout([{ image: img }], { scale: 1 }).width, 240, 'a canvas never narrower than 240 px');
});

test('overlayPng: a long query wraps inside the width and keeps every word', () => {
  const img = noise(400, 300);
  const query = 'When a person wants to sit down after a long walk in the park on a hot afternoon, which object in this picture would they most likely use, and why?';
  const L = sheetLayout([{ image: img }], { query, title: 'IoU 3.0%' });
  assert.ok(L.header.length >= 3);
  assert.is(L.header[0], 'IoU 3.0%');
  assert.is(L.header.slice(1).join(' '), `Query: ${query}`);
  for (const l of L.header) assert.ok(textWidth(l, L.font) <= L.width - 2 * L.pad, l);
  assert.is(L.panels[0].top, 2 * L.pad + L.header.length * L.lineH);
});

test('overlayPng: bad inputs name the panel and the field', async () => {
  const img = noise(10, 10);
  try { await overlayPng(img, { mask: new Uint8Array(99) }); assert.unreachable(); } catch (e) { assert.is((e as Error).message, 'overlayPng: panel 0: mask has 99 values, expected 10 x 10 = 100'); }
  try { await overlayPng(img, { groundTruth: { mask: new Uint8Array(3) } }); assert.unreachable(); } catch (e) { assert.is((e as Error).message, 'overlayPng: panel 0: groundTruth.mask has 3 values, expected 10 x 10 = 100'); }
  try { await overlayPng({ ...img, channels: 2 }); assert.unreachable(); } catch (e) { assert.is((e as Error).message, 'overlayPng: panel 0: image has 2 channels (1, 3 or 4 expected)'); }
  try { await overlaySheetPng([]); assert.unreachable(); } catch (e) { assert.is((e as Error).message, 'overlayPng: no image panels'); }
  try { await overlayPng(img, { scale: 1.5 }); assert.unreachable(); } catch (e) { assert.is((e as Error).message, 'overlayPng: scale must be a whole number >= 1, got 1.5'); }
});

test('maskOutline: the pixels of the mask within t px of its edge', () => {
  const m = rectMask(9, 9, [2, 2, 7, 7]);
  assert.is(maskOutline(m, 9, 9, 1).reduce((a, b) => a + b, 0), 16);
  assert.is(maskOutline(m, 9, 9, 2).reduce((a, b) => a + b, 0), 24);
  assert.is(maskOutline(new Uint8Array(9).fill(1), 3, 3, 1).reduce((a, b) => a + b, 0), 8, 'the image border counts as outside');
});

test('worst/: prediction beside ground truth under the IoU as a percentage and the query, the caption wrapped below', async () => {
  assert.is(percent(0.4231), '42.3%');
  assert.is(percent(0), '0.0%');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'worst-'));
  const img = noise(64, 64);
  const gt = rectMask(64, 64, [10, 10, 30, 30]);
  const ws = new WorstSamples(dir, 2, []);
  const caption = 'a very long caption that certainly does not fit on one line of a small overlay, so it must wrap';
  await ws.add({ id: 's0', query: 'the square', iou: 0.25 }, img, { mask: rectMask(64, 64, [20, 20, 40, 40]), bbox: [20, 20, 40, 40], points: [[30, 30]], caption }, gt);
  const meta = await sharp(path.join(dir, 'worst', 's0.png')).metadata();
  const s = Math.floor(MIN_SIDE / 64);
  const L = sheetLayout([{ image: img, label: 'p', mask: gt, bbox: [0, 0, 1, 1], points: [[1, 1]], groundTruth: { mask: gt } }, { image: img, groundTruth: { mask: gt, fill: true } }], { title: 'IoU 25.0% · s0', query: 'the square', caption });
  assert.equal([meta.width, meta.height], [L.width, L.height]);
  assert.ok(meta.width! > 2 * 64 * s && meta.height! > 64 * s + 3 * L.lineH, 'two panels, bands above and below');
  assert.ok(L.footer.length >= 2, 'the caption wraps');
  assert.is(L.footer.join(' '), `Caption: ${caption}`);
  assert.is(L.header[0], 'IoU 25.0% · s0');
  ws.writeIndex();
  assert.match(fs.readFileSync(path.join(dir, 'worst', 'index.md'), 'utf8'), /\| rank \| id \| IoU \(%\) \| query \| overlay \|\n\|---\|---\|---\|---\|---\|\n\| 1 \| s0 \| 25\.0 \| the square \|/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
