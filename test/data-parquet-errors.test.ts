/**
 * Untrusted parquet files (issue 20): every error names the file, and a page that does not decode
 * costs only its rows, each listed in `skipped` with the reason. Files are written with
 * hyparquet-writer, then their bytes are corrupted.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { ByteWriter, parquetWriteFile } from 'hyparquet-writer';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import { parquetMetadata, readOffsetIndex } from 'hyparquet';
import type { FileMetaData } from 'hyparquet';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parquetEvalSamples, parquetRowCount, parquetTrainSamples } from '../src/data/parquet.ts';
import type { Skipped } from '../src/data/reasonseg.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-parquet-errors-'));
const SOLUTION = '<box>(1,1),(6,6)</box><points>(2,2),(4,4)</points>';
const N = 30; // 3 row groups of 10 rows; small pages: 2 images a page, 6 queries a page
const pngs = await Promise.all(Array.from({ length: N }, (_, i) => sharp(Buffer.alloc(8 * 8 * 3, i * 7), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer()));
let serial = 0;

function trainFile(opts: { offsetIndex?: boolean; image?: Uint8Array[] } = {}): string {
  const file = path.join(tmp, `train-${serial++}.parquet`);
  const offsetIndex = opts.offsetIndex ?? true;
  parquetWriteFile({
    filename: file,
    rowGroupSize: 10,
    pageSize: 200,
    columnData: [
      { name: 'image', data: opts.image ?? pngs, type: 'BYTE_ARRAY', offsetIndex },
      { name: 'problem', data: Array.from({ length: N }, (_, i) => `query number ${i} with some text`), type: 'STRING', offsetIndex },
      { name: 'solution', data: Array.from({ length: N }, () => SOLUTION), type: 'STRING', offsetIndex },
    ],
  });
  return file;
}

function evalFile(columns: ('image' | 'text' | 'mask')[] = ['image', 'text', 'mask']): string {
  const file = path.join(tmp, `eval-${serial++}.parquet`);
  const mask = JSON.stringify(Array.from({ length: 8 }, () => Array.from({ length: 8 }, () => 1)));
  const all = {
    image: { name: 'image', data: pngs, type: 'BYTE_ARRAY' as const },
    text: { name: 'text', data: Array.from({ length: N }, (_, i) => `the thing ${i}`), type: 'STRING' as const },
    mask: { name: 'mask', data: Array.from({ length: N }, () => mask), type: 'STRING' as const },
  };
  parquetWriteFile({ filename: file, rowGroupSize: 10, pageSize: 200, columnData: columns.map(c => all[c]) });
  return file;
}

function footer(file: string): { bytes: Buffer; meta: FileMetaData; footerStart: number } {
  const bytes = fs.readFileSync(file);
  const len = bytes.readUInt32LE(bytes.length - 8);
  return { bytes, meta: parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)), footerStart: bytes.length - 8 - len };
}

/** [offset, compressed size incl. header, first row] of each page of a column chunk, from its offset index */
function pages(file: string, group: number, column: string): [number, number, number][] {
  const { bytes, meta } = footer(file);
  const c = meta.row_groups[group].columns.find(c => c.meta_data?.path_in_schema[0] === column)!;
  const view = new DataView(bytes.buffer, bytes.byteOffset + Number(c.offset_index_offset), c.offset_index_length);
  return readOffsetIndex({ view, offset: 0 }).page_locations.map(p => [Number(p.offset), p.compressed_page_size, Number(p.first_row_index)]);
}

function corrupt(file: string, at: number, n: number): void {
  const bytes = fs.readFileSync(file);
  for (let k = 0; k < n; k++) bytes[at + k] ^= 0x5a;
  fs.writeFileSync(file, bytes);
}

/** The file with its footer replaced by `edit(meta)`, written back with hyparquet-writer. */
function refooter(file: string, edit: (meta: FileMetaData) => void): string {
  const { bytes, meta, footerStart } = footer(file);
  edit(meta);
  const w = new ByteWriter();
  writeMetadata(w, meta as unknown as Parameters<typeof writeMetadata>[1]); // hyparquet-writer bundles its own hyparquet types
  w.appendBytes(new TextEncoder().encode('PAR1'));
  const out = path.join(tmp, `refooter-${serial++}.parquet`);
  fs.writeFileSync(out, Buffer.concat([bytes.subarray(0, footerStart), Buffer.from(w.getBytes())]));
  return out;
}

async function errorOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

async function drain(file: string, skipped: Skipped[]): Promise<string[]> {
  const ids: string[] = [];
  for await (const s of parquetEvalSamples(file, skipped)) ids.push(s.id);
  return ids;
}

/** The same message from the three entry points. */
async function allRefuse(file: string, message: string, evalToo = true): Promise<void> {
  assert.is(await errorOf(() => parquetRowCount(file)), message, 'parquetRowCount');
  assert.is(await errorOf(() => parquetTrainSamples(file, [])), message, 'parquetTrainSamples');
  if (evalToo) assert.is(await errorOf(() => drain(file, [])), message, 'parquetEvalSamples');
}

test('a missing file, a file that is not parquet, a tiny file: refused naming the file', async () => {
  const missing = path.join(tmp, 'nope.parquet');
  await allRefuse(missing, `${missing}: cannot open the parquet file (ENOENT)`);
  const text = path.join(tmp, 'notes.parquet');
  fs.writeFileSync(text, 'these are not the bytes of a parquet file\n');
  await allRefuse(text, `${text}: not a parquet file (it does not start with 'PAR1')`);
  const tiny = path.join(tmp, 'tiny.parquet');
  fs.writeFileSync(tiny, 'PAR1');
  await allRefuse(tiny, `${tiny}: not a parquet file (4 bytes, under the 12 of an empty one)`);
  await allRefuse(tmp, `${tmp}: not a file`);
});

test('a truncated file: refused naming the file', async () => {
  const file = trainFile();
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await allRefuse(file, `${file}: truncated or not a parquet file (it does not end with 'PAR1')`, false);
});

test('a footer length past the start of the file, or a footer that does not parse: refused naming the file', async () => {
  const file = trainFile();
  const bytes = fs.readFileSync(file);
  bytes.writeUInt32LE(0xffff0000, bytes.length - 8);
  fs.writeFileSync(file, bytes);
  await allRefuse(file, `${file}: bad parquet footer: its length 4294901760 exceeds the ${bytes.length - 12} bytes between the magic numbers`, false);

  const garbled = trainFile();
  const { footerStart } = footer(garbled);
  corrupt(garbled, footerStart, 6);
  await allRefuse(garbled, `${garbled}: bad parquet footer (thrift unhandled type: 15)`, false);
});

test('a footer that lies about the rows or the byte ranges: refused naming the file', async () => {
  const rows = refooter(trainFile(), m => { m.num_rows = 31n; });
  await allRefuse(rows, `${rows}: bad parquet footer: num_rows is 31 but the row groups hold 30`, false);
  const size = fs.statSync(trainFile()).size;
  const range = refooter(trainFile(), m => { m.row_groups[1].columns[0].meta_data!.total_compressed_size = BigInt(size * 10); });
  const { footerStart } = footer(range);
  const start = Number(footer(range).meta.row_groups[1].columns[0].meta_data!.data_page_offset);
  await allRefuse(range, `${range}: bad parquet footer: row group 1 column 'image' claims bytes ${start}..${start + size * 10}, outside the data (4..${footerStart})`, false);
});

test('a missing column is refused by name, with the file and the columns it has', async () => {
  const noMask = evalFile(['image', 'text']);
  assert.is(await errorOf(() => drain(noMask, [])), `${noMask}: no column 'mask' (its columns: image, text)`);
  assert.is(await parquetRowCount(noMask), N, 'the row count needs no particular column');
  assert.is(await errorOf(() => parquetTrainSamples(noMask, [])), `${noMask}: no column 'problem', 'solution' (its columns: image, text)`);
  const train = trainFile();
  assert.is(await errorOf(() => drain(train, [])), `${train}: no column 'text', 'mask' (its columns: image, problem, solution)`);
});

test('a bad page with an offset index: only its rows are skipped, with the file, the row group and the reason', async () => {
  const file = trainFile();
  const [at, , first] = pages(file, 1, 'image')[2]; // rows 14 and 15
  assert.is(first, 4);
  corrupt(file, at + 10, 4); // inside the page header
  const skipped: Skipped[] = [];
  const got = await parquetTrainSamples(file, skipped, { subset: false });
  const reason = `${file}: row group 1: unreadable parquet page (thrift unhandled type: 15)`;
  assert.equal(skipped, [{ id: '14', reason }, { id: '15', reason }]);
  assert.equal(got.map(s => s.query), Array.from({ length: N }, (_, i) => i).filter(i => i !== 14 && i !== 15).map(i => `query number ${i} with some text`));
  assert.is(await parquetRowCount(file), N);
});

test('a bad page in the shared query column: its four rows are skipped, the other row groups come through', async () => {
  const file = trainFile();
  const [at, len, first] = pages(file, 1, 'problem')[1]; // rows 16..19
  assert.is(first, 6);
  corrupt(file, at + len - 40, 40); // the snappy data
  const skipped: Skipped[] = [];
  const got = await parquetTrainSamples(file, skipped, { subset: false });
  assert.equal(skipped.map(s => s.id), ['16', '17', '18', '19']);
  assert.is(skipped[0].reason, `${file}: row group 1: unreadable parquet page (cannot copy from before start of buffer)`);
  assert.is(got.length, N - 4);
});

test('without an offset index: a bad page costs its rows and the next; a bad page header the rest of its row group', async () => {
  const dataBad = trainFile({ offsetIndex: false });
  const [at] = pages(trainFile(), 1, 'image')[2]; // the same layout, rows 14 and 15
  corrupt(dataBad, at + 30, 1); // the snappy length of the page's data
  const skipped: Skipped[] = [];
  await parquetTrainSamples(dataBad, skipped, { subset: false });
  const reason = `${dataBad}: row group 1: unreadable parquet page (Invalid typed array length: 5898333)`;
  // hyparquet decodes the page before a range starting on a page boundary, so row 16 goes too
  assert.equal(skipped, ['14', '15', '16'].map(id => ({ id, reason })));

  const headerBad = trainFile({ offsetIndex: false });
  corrupt(headerBad, at + 10, 4);
  const sk2: Skipped[] = [];
  const got = await parquetTrainSamples(headerBad, sk2, { subset: false });
  assert.equal(sk2.map(s => s.id), ['14', '15', '16', '17', '18', '19']);
  assert.is(sk2[0].reason, `${headerBad}: row group 1: unreadable parquet page (thrift unhandled type: 15)`);
  assert.is(got.length, N - 6);
});

test('evaluation rows: a bad page is skipped as "row <index>", the rest come through', async () => {
  const file = evalFile();
  const [at] = pages(file, 2, 'image')[0]; // rows 20 and 21
  corrupt(file, at + 10, 4);
  const skipped: Skipped[] = [];
  const ids = await drain(file, skipped);
  assert.is(ids.length, N - 2);
  assert.equal(skipped.map(s => s.id), ['row 20', 'row 21']);
  assert.is(skipped[0].reason, `${file}: row group 2: unreadable parquet page (thrift unhandled type: 15)`);
});

test('only the training subset is read: a bad row outside it is not counted', async () => {
  const file = trainFile();
  const [at] = pages(file, 1, 'image')[2]; // rows 14 and 15
  corrupt(file, at + 10, 4);
  const skipped: Skipped[] = [];
  // default_rng(9).permutation(30)[:5] is rows 9, 18, 14, 2, 25: row 14 is lost, row 15 is not wanted
  const got = await parquetTrainSamples(file, skipped, { subset: 5, seed: 9 });
  assert.equal(got.map(s => s.query), [9, 18, 2, 25].map(i => `query number ${i} with some text`));
  assert.equal(skipped, [{ id: '14', reason: `${file}: row group 1: unreadable parquet page (thrift unhandled type: 15)` }]);
});

test('image bytes that do not decode: the row is skipped, the reason names the column', async () => {
  const image: Uint8Array[] = pngs.slice();
  image[3] = new Uint8Array([1, 2, 3, 4]);
  const file = trainFile({ image });
  const skipped: Skipped[] = [];
  const got = await parquetTrainSamples(file, skipped, { subset: false });
  assert.is(got.length, N - 1);
  assert.equal(skipped, [{ id: '3', reason: "'image': cannot decode the image (Input buffer contains unsupported image format)" }]);
});

test.run();
