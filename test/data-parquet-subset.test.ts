import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { parquetWriteFile } from 'hyparquet-writer';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parquetTrainSamples, RELEASED_SUBSET } from '../src/data/parquet.ts';
import type { Skipped } from '../src/data/reasonseg.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-subset-'));
const SOLUTION = '<box>(1,1),(6,6)</box><points>(2,2),(4,4)</points>';

async function writeTrain(n: number, broken: number[] = []): Promise<string> {
  const png = await sharp(Buffer.alloc(8 * 8 * 3, 90), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
  const file = path.join(tmp, `train-${n}-${broken.join('_')}.parquet`);
  parquetWriteFile({
    filename: file,
    columnData: [
      { name: 'image', data: Array.from({ length: n }, () => png), type: 'BYTE_ARRAY' },
      { name: 'problem', data: Array.from({ length: n }, (_, i) => `q${i}`), type: 'STRING' },
      { name: 'solution', data: Array.from({ length: n }, (_, i) => (broken.includes(i) ? 'broken' : SOLUTION)), type: 'STRING' },
    ],
  });
  return file;
}

test('the released subset is the default: 3,000 rows, seed 9', () => {
  assert.equal(RELEASED_SUBSET, { size: 3000, seed: 9 });
});

test('a subset is default_rng(seed).permutation(n)[:size], in the shuffled order (numpy 2.4.6 values)', async () => {
  const file = await writeTrain(12);
  const a = await parquetTrainSamples(file, [], { subset: 5, seed: 9 });
  assert.equal(a.map(s => s.query), ['q7', 'q2', 'q6', 'q10', 'q9']);
  const b = await parquetTrainSamples(file, [], { subset: 5, seed: 3 });
  assert.equal(b.map(s => s.query), ['q11', 'q7', 'q2', 'q10', 'q0']);
  assert.is(a[0].solution, SOLUTION);
  assert.equal([a[0].image.width, a[0].image.height], [8, 8]);
});

test('12 rows under the default 3,000: every row, in file order; subset false: every row too', async () => {
  const file = await writeTrain(12);
  const all = Array.from({ length: 12 }, (_, i) => `q${i}`);
  assert.equal((await parquetTrainSamples(file, [])).map(s => s.query), all);
  assert.equal((await parquetTrainSamples(file, [], { subset: false, seed: 3 })).map(s => s.query), all);
});

test('a broken row inside the subset is skipped with its reason; one outside it is never read', async () => {
  const file = await writeTrain(12, [2, 3]);
  const skipped: Skipped[] = [];
  const a = await parquetTrainSamples(file, skipped, { subset: 5, seed: 9 });
  assert.equal(a.map(s => s.query), ['q7', 'q6', 'q10', 'q9']);
  assert.equal(skipped, [{ id: '2', reason: "no '<box>' in 'solution'" }]);
  let err = '';
  await parquetTrainSamples(file, [], { subset: -1 }).catch((e: Error) => (err = e.message));
  assert.is(err, 'parquetTrainSamples: subset must be a non-negative integer or false, got -1');
});

test.run();
