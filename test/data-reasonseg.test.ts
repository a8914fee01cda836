import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { maskFromAnnotation, reasonSegSamples, reasonSegTarget, type Skipped } from '../src/data/reasonseg.ts';
import type { EvalSample } from '../src/eval/evaluate.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-reasonseg-'));
const W = 12;
const H = 10;

// a target square (2..5 x 2..5), a disjoint ignore square (8..10 x 6..8) and a flag shape
const ANNO = {
  text: ['What can hold water?', 'unused second query'],
  is_sentence: true,
  shapes: [
    { label: 'target', points: [[2, 2], [5, 2], [5, 5], [2, 5]] },
    { label: 'Ignore_region', points: [[8, 6], [10, 6], [10, 8], [8, 8]] },
    { label: 'flag', points: [[0, 0], [11, 0], [11, 9], [0, 9]] },
  ],
};

function count(m: Uint8Array, v: number): number {
  return m.reduce((a, b) => a + (b === v ? 1 : 0), 0);
}

async function folder(): Promise<string> {
  const dir = path.join(tmp, 'set');
  fs.mkdirSync(dir, { recursive: true });
  await sharp({ create: { width: W, height: H, channels: 3, background: 'gray' } }).png().toFile(path.join(dir, 'a.png'));
  fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(ANNO));
  return dir;
}

async function collect(it: AsyncGenerator<EvalSample>): Promise<EvalSample[]> {
  const out: EvalSample[] = [];
  for await (const s of it) out.push(s);
  return out;
}

test('label mask: 1 target, 255 ignore, flag skipped; vertices truncated to int32 as np.array(points, dtype=np.int32)', () => {
  const m = maskFromAnnotation(ANNO, W, H);
  assert.is(count(m, 1), 16);
  assert.is(count(m, 255), 9);
  assert.is(m[0], 0, 'the flag shape is skipped');
  // fractional vertices: 2.9 -> 2 and 5.99 -> 5, the same square
  const frac = maskFromAnnotation({ shapes: [{ label: 'x', points: [[2.9, 2.2], [5.99, 2.7], [5.5, 5.9], [2.1, 5.4]] }] }, W, H);
  assert.equal(Array.from(frac), Array.from(maskFromAnnotation({ shapes: [ANNO.shapes[0]] }, W, H)));
});

test('folder samples: ignore regions are target by default (create_reasonseg_hf.py mask.astype(bool)); text[0] is the query', async () => {
  const dir = await folder();
  const skipped: Skipped[] = [];
  const [s] = await collect(reasonSegSamples(dir, skipped));
  assert.equal(skipped, []);
  assert.is(s.query, 'What can hold water?');
  assert.is(count(s.mask, 1), 25);
  assert.is(count(s.mask, 255), 0);
  assert.is(s.mask[7 * W + 9], 1, 'inside the ignore square');
  assert.is(s.mask[3 * W + 3], 1, 'inside the target square');
});

test("folder samples with ignore: 'background': the ignore square is not target", async () => {
  const dir = await folder();
  const [s] = await collect(reasonSegSamples(dir, [], { ignore: 'background' }));
  assert.is(count(s.mask, 1), 16);
  assert.is(s.mask[7 * W + 9], 0);
});

test('an overlapping ignore shape inside the target: both readings', () => {
  const anno = { shapes: [{ label: 'target', points: [[0, 0], [9, 0], [9, 9], [0, 9]] }, { label: 'ignore', points: [[3, 3], [5, 3], [5, 5], [3, 5]] }] };
  assert.is(count(reasonSegTarget(maskFromAnnotation(anno, 10, 10)), 1), 100);
  assert.is(count(reasonSegTarget(maskFromAnnotation(anno, 10, 10), 'background'), 1), 91);
  assert.throws(() => reasonSegTarget(new Uint8Array(1), 'void' as 'target'), /^reasonseg: option 'ignore' must be 'target' or 'background', got 'void'$/);
});

test.run();
