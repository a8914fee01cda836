import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countReasonSeg, fillPolygon, maskFromAnnotation, reasonSegSamples, type Skipped } from '../src/data/reasonseg.ts';
import { evaluate, readResults, type EvalSample } from '../src/eval/evaluate.ts';
import { giouCiou } from '../src/eval/metrics.ts';
import { Segmenter } from '../src/pipeline/segment.ts';
import { worldSample } from '../src/data/world/generator.ts';
import { tinyPolicy, tinySam } from './helpers/world.ts';
import { parquetWriteFile } from 'hyparquet-writer';
import { parquetEvalSamples, parquetRowCount, parquetTrainSamples } from '../src/data/parquet.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-eval-'));

test('polygon fill: a square covers its pixels, LISA ordering marks ignore regions 255', () => {
  const m = new Uint8Array(100);
  fillPolygon(m, 10, 10, [[2, 2], [6, 2], [6, 6], [2, 6]], 1);
  let n = 0;
  for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) if (m[y * 10 + x]) { n++; assert.ok(x >= 2 && x <= 6 && y >= 2 && y <= 6); }
  assert.is(n, 25);
  const mask = maskFromAnnotation({ shapes: [{ label: 'target', points: [[0, 0], [9, 0], [9, 9], [0, 9]] }, { label: 'ignore', points: [[3, 3], [5, 3], [5, 5], [3, 5]] }, { label: 'flag', points: [[0, 0], [1, 0], [1, 1]] }] }, 10, 10);
  assert.is(mask[4 * 10 + 4], 255);
  assert.is(mask[0], 1);
  assert.throws(() => maskFromAnnotation({ shapes: [{ label: 'target', points: [[0, 0]] }] }, 4, 4), /no valid polygon/);
});

async function writeReasonSeg(dir: string) {
  fs.mkdirSync(dir, { recursive: true });
  for (let k = 0; k < 3; k++) {
    const s = worldSample('val', k, { size: 64 });
    await sharp(Buffer.from(s.image.data), { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(path.join(dir, `s${k}.png`));
    const [x1, y1, x2, y2] = s.box;
    fs.writeFileSync(path.join(dir, `s${k}.json`), JSON.stringify({ text: [s.query], is_sentence: k === 0, shapes: [{ label: 'target', shape_type: 'polygon', points: [[x1, y1], [x2, y1], [x2, y2], [x1, y2]] }] }));
  }
  fs.writeFileSync(path.join(dir, 'broken.json'), '{"text": ["x"], "shapes": "nope"}');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).png().toFile(path.join(dir, 'broken.png'));
  fs.writeFileSync(path.join(dir, 'orphan.json'), '{"text": ["no image"], "shapes": []}');
}

test('a ReasonSeg-layout folder is evaluated; malformed samples are skipped with reasons; metrics recompute from results.jsonl', async () => {
  const data = path.join(tmp, 'reasonseg');
  await writeReasonSeg(data);
  assert.is(countReasonSeg(data), 5);
  const { policy, reference } = tinyPolicy(4);
  const seg = new Segmenter(policy, tinySam());
  const skipped: Skipped[] = [];
  const out = path.join(tmp, 'out');
  const { tables } = await evaluate(seg, reasonSegSamples(data, skipped), 5, { outDir: out, maxNewTokens: 4, name: 'reasonseg-test' });
  assert.equal(skipped.map(s => s.id).sort(), ['broken', 'orphan']);
  assert.match(skipped.find(s => s.id === 'broken')!.reason, /no 'shapes' list/);
  for (const f of ['results.jsonl', 'metrics.json', 'report.md']) assert.ok(fs.existsSync(path.join(out, f)), f);
  const recs = readResults(path.join(out, 'results.jsonl'));
  assert.is(recs.length, 3);
  const again = giouCiou(recs);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  assert.is(m.all.gIoU, again.gIoU);
  assert.is(m.all.cIoU, again.cIoU);
  assert.is(tables.all.n, 3);
  assert.ok(Object.keys(m.strata.kind).length === 2, 'stratified by sentence / phrase');
  const rep = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.match(rep, /\| all \| 3 \|/);
  // Figure 4 / Figure 5 as real PNGs, and the worst-sample overlays (3 samples, default N = 8)
  for (const f of ['tokens_scatter.png', 'tokens_by_group.png']) {
    const meta = await sharp(path.join(out, f)).metadata();
    assert.is(meta.format, 'png', f);
    assert.ok(meta.width! >= 300, f);
    assert.match(rep, new RegExp(f.replace('.', '\\.')));
  }
  const worst = fs.readdirSync(path.join(out, 'worst')).filter(f => f.endsWith('.png')).sort();
  assert.equal(worst, ['s0.png', 's1.png', 's2.png']);
  const ov = await sharp(path.join(out, 'worst', 's0.png')).metadata();
  assert.ok(ov.width! > 2 * 64 && ov.height! > 64, 'prediction beside ground truth, with text bands');
  const index = fs.readFileSync(path.join(out, 'worst', 'index.md'), 'utf8');
  const ious = [...index.matchAll(/^\| \d+ \| \S+ \| ([\d.]+) \|/gm)].map(m => Number(m[1]));
  assert.is(ious.length, 3);
  assert.equal(ious, [...ious].sort((a, b) => a - b), 'ranked by IoU, lowest first');
  seg.dispose(); policy.model.dispose(); reference.dispose();
});

test('npm run eval (examples/eval.ts) with the demo weights on a ReasonSeg folder and the world test split writes every output', async () => {
  const data = path.join(tmp, 'reasonseg-cli');
  await writeReasonSeg(data);
  const out = path.join(tmp, 'cli-out');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/eval.ts', '--data', data, '--data', 'world:test:2', '--weights', 'weights/demo', '--out', out, '--max-new-tokens', '48', '--worst', '2'], { encoding: 'utf8', env: { ...process.env, DPAD_QUIET: '1' } });
  assert.is(r.status, 0, r.stderr);
  const dirs = fs.readdirSync(out).filter(d => fs.statSync(path.join(out, d)).isDirectory()).sort();
  assert.is(dirs.length, 2, dirs.join(','));
  for (const d of dirs) {
    for (const f of ['results.jsonl', 'metrics.json', 'report.md', 'tokens_scatter.png', 'tokens_by_group.png', 'skipped.json', 'worst/index.md']) assert.ok(fs.existsSync(path.join(out, d, f)), `${d}/${f}`);
    const recs = readResults(path.join(out, d, 'results.jsonl'));
    const m = JSON.parse(fs.readFileSync(path.join(out, d, 'metrics.json'), 'utf8'));
    const again = giouCiou(recs);
    assert.is(m.all.gIoU, again.gIoU);
    assert.is(m.all.cIoU, again.cIoU);
    assert.ok(fs.readdirSync(path.join(out, d, 'worst')).filter(f => f.endsWith('.png')).length === 2);
  }
  assert.ok(fs.existsSync(path.join(out, 'tokens_by_dataset.png')), 'Figure 5 across the two datasets');
  assert.match(r.stdout, /world:test:2: gIoU/);
});

test('a killed evaluation resumes without counting any sample twice; a fresh one reruns all', async () => {
  const { policy, reference } = tinyPolicy(5);
  const seg = new Segmenter(policy, tinySam());
  const out = path.join(tmp, 'resume');
  const mk = (n: number): EvalSample => { const s = worldSample('test', n, { size: 64 }); return { id: s.id, image: s.image, query: s.query, mask: s.mask }; };
  function* dying() { for (let i = 0; i < 4; i++) { if (i === 2) throw new Error('killed'); yield mk(i); } }
  try {
    await evaluate(seg, dying(), 4, { outDir: out, maxNewTokens: 3 });
    assert.unreachable('should be killed');
  } catch (e) {
    assert.match((e as Error).message, /killed/);
  }
  fs.appendFileSync(path.join(out, 'results.jsonl'), '{"id": "torn');
  assert.is(readResults(path.join(out, 'results.jsonl')).length, 2);
  let segmented = 0;
  function* all() { for (let i = 0; i < 4; i++) yield mk(i); }
  const orig = seg.segmentBatch.bind(seg);
  seg.segmentBatch = async (items, o) => { segmented += items.length; return orig(items, o); };
  const { records } = await evaluate(seg, all(), 4, { outDir: out, maxNewTokens: 3, worst: 3 });
  assert.is(segmented, 2, 'only the two missing samples are run');
  const kept = fs.readdirSync(path.join(out, 'worst')).filter(f => f.endsWith('.png'));
  assert.ok(kept.length <= 3, `at most N = 3 overlays after the resumed run (${kept})`);
  assert.equal(records.map(r => r.id).sort(), ['test-0', 'test-1', 'test-2', 'test-3']);
  assert.is(readResults(path.join(out, 'results.jsonl')).length, 4);
  // fresh: another model's results are not reused
  segmented = 0;
  await evaluate(seg, all(), 4, { outDir: out, maxNewTokens: 3, worst: 3, fresh: true });
  assert.is(segmented, 4, 'a fresh evaluation runs every sample again');
  assert.is(readResults(path.join(out, 'results.jsonl')).length, 4);
  seg.dispose(); policy.model.dispose(); reference.dispose();
});

test('Seg-Zero parquet rows: evaluation and training loaders, a corrupt row skipped with its reason, a seeded subset', async () => {
  const rows = [0, 1, 2].map(k => worldSample('val', k, { size: 48 }));
  const png = await Promise.all(rows.map(s => sharp(Buffer.from(s.image.data), { raw: { width: 48, height: 48, channels: 3 } }).png().toBuffer()));
  const evalFile = path.join(tmp, 'eval.parquet');
  parquetWriteFile({
    filename: evalFile,
    columnData: [
      { name: 'image', data: [png[0], png[1], new Uint8Array([1, 2, 3])], type: 'BYTE_ARRAY' },
      { name: 'text', data: rows.map(s => s.query), type: 'STRING' },
      { name: 'mask', data: rows.map(s => JSON.stringify(Array.from({ length: 48 }, (_, y) => Array.from(s.mask.slice(y * 48, (y + 1) * 48), v => v === 1)))), type: 'STRING' },
      { name: 'image_id', data: ['a', 'b', 'c'], type: 'STRING' },
      { name: 'ann_id', data: [1, 2, 3], type: 'INT32' },
      { name: 'img_height', data: [48, 48, 48], type: 'INT32' },
      { name: 'img_width', data: [48, 48, 48], type: 'INT32' },
    ],
  });
  assert.is(await parquetRowCount(evalFile), 3);
  const skipped: Skipped[] = [];
  const got: EvalSample[] = [];
  for await (const s of parquetEvalSamples(evalFile, skipped)) got.push(s);
  assert.equal(got.map(s => s.id), ['a-1', 'b-2']);
  assert.equal(Array.from(got[1].mask), Array.from(rows[1].mask));
  assert.is(skipped.length, 1);
  assert.match(skipped[0].reason, /cannot decode the image/);
  const trainFile = path.join(tmp, 'train.parquet');
  parquetWriteFile({
    filename: trainFile,
    columnData: [
      { name: 'image', data: Array.from({ length: 10 }, (_, i) => png[i % 2]), type: 'BYTE_ARRAY' },
      { name: 'problem', data: Array.from({ length: 10 }, (_, i) => `query ${i}`), type: 'STRING' },
      { name: 'solution', data: Array.from({ length: 10 }, (_, i) => (i === 3 ? 'broken' : rows[0].solution)), type: 'STRING' },
    ],
  });
  const sk2: Skipped[] = [];
  const all = await parquetTrainSamples(trainFile, sk2);
  assert.is(all.length, 9);
  assert.equal(sk2, [{ id: '3', reason: "no '<box>' in 'solution'" }]);
  const a = await parquetTrainSamples(trainFile, [], { subset: 4, seed: 9 });
  const b = await parquetTrainSamples(trainFile, [], { subset: 4, seed: 9 });
  assert.equal(a.map(s => s.query), b.map(s => s.query));
  assert.ok(a.length <= 4);
});

test.run();
