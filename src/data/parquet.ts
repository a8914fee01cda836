/**
 * Seg-Zero's parquet releases, streamed a chunk of rows at a time through hyparquet.
 * - training (`refCOCOg_*_840`): `image`, `problem` (the query), `solution` (`<box>..</box><points>..</points>`)
 * - evaluation (ReasonSeg / RefCOCO splits): `image`, `text`, `mask`, `image_id`, `ann_id`, `img_height`, `img_width`
 * Images come as encoded bytes (or HF's {bytes, path} struct); masks as nested lists, JSON, or
 * encoded images. A malformed row is skipped and counted with its reason.
 *
 * Untrusted files: every error names the file. The magic numbers, the footer length, the footer
 * itself, the row counts and the column chunks' byte ranges are checked when the file is opened
 * (`openParquet`, used by all three entry points), and a missing column is refused by name. A page
 * that does not decode costs only its rows, each listed in `skipped` with the reason:
 *
 * Granularity of a skip. hyparquet decodes a column chunk page by page and its row-range reads
 * (`rowStart`/`rowEnd`) decode only the pages that overlap the range when it can: through the
 * offset index when the file has one (any column), or, without it, for flat columns only, by
 * walking the page headers and skipping the pages before the range without decoding them (its test
 * is `pageStart > num_values`, so the row just after a bad page reads the bad page too and is lost
 * with it). A struct column such as HF's image {bytes, path} without an offset index is decoded
 * whole, so there a bad page costs its row group; so does a bad dictionary page or a page header
 * that does not parse (the pages after it cannot be found). So rows are read in chunks that never
 * cross a row group; a chunk that fails is read again row by row, from a per-row-group byte cache,
 * and only the rows that still fail are skipped: page granularity where hyparquet can read pages
 * alone, row-group granularity where it cannot.
 */
import * as fs from 'node:fs';
import { asyncBufferFromFile, cachedAsyncBuffer, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import { FormatError } from '../io/errors.ts';
import { loadImage } from '../io/image.ts';
import type { ImageU8 } from '../io/resample.ts';
import type { EvalSample, Skipped, TrainSample } from './types.ts';
import { shuffledSubset } from './numpy_rng.ts';

type Row = Record<string, unknown>;

/** The columns each loader cannot do without (the others have fallbacks). */
const EVAL_COLUMNS = ['image', 'text', 'mask'] as const;
const TRAIN_COLUMNS = ['image', 'problem', 'solution'] as const;
/** rows per read; a failed read is retried row by row */
const CHUNK = 64;
const MAGIC = 0x31524150; // 'PAR1' little-endian

interface ParquetFile {
  file: string;
  buf: AsyncBuffer;
  meta: FileMetaData;
  rows: number;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Open and check a parquet file: 'PAR1' at both ends, a footer length that fits, a footer that
 * parses, row groups that add up to `num_rows`, column chunks inside the file, and the `need`ed
 * top-level columns. Every error is a FormatError naming the file.
 */
async function openParquet(file: string, need: readonly string[] = []): Promise<ParquetFile> {
  const fail = (msg: string): never => { throw new FormatError(file, msg); };
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) fail('not a file');
    size = st.size;
  } catch (e) {
    if (e instanceof FormatError) throw e;
    return fail(`cannot open the parquet file (${(e as NodeJS.ErrnoException).code ?? message(e)})`);
  }
  // smallest parquet file: 'PAR1' + footer + footer length (4) + 'PAR1'
  if (size < 12) fail(`not a parquet file (${size} bytes, under the 12 of an empty one)`);
  const buf = await asyncBufferFromFile(file);
  const head = new DataView(await buf.slice(0, 4));
  if (head.getUint32(0, true) !== MAGIC) fail("not a parquet file (it does not start with 'PAR1')");
  const tail = new DataView(await buf.slice(size - 8, size));
  if (tail.getUint32(4, true) !== MAGIC) fail("truncated or not a parquet file (it does not end with 'PAR1')");
  const footerLength = tail.getUint32(0, true);
  const footerStart = size - 8 - footerLength;
  if (footerStart < 4) fail(`bad parquet footer: its length ${footerLength} exceeds the ${size - 12} bytes between the magic numbers`);
  let meta: FileMetaData;
  try {
    meta = await parquetMetadataAsync(buf);
  } catch (e) {
    return fail(`bad parquet footer (${message(e)})`);
  }
  const rows = Number(meta.num_rows);
  if (!Number.isSafeInteger(rows) || rows < 0) fail(`bad parquet footer: num_rows is ${meta.num_rows}`);
  let sum = 0;
  meta.row_groups.forEach((g, k) => {
    const n = Number(g.num_rows);
    if (!Number.isSafeInteger(n) || n < 0) fail(`bad parquet footer: row group ${k} has num_rows ${g.num_rows}`);
    sum += n;
    for (const c of g.columns) {
      const m = c.meta_data;
      if (!m) continue; // hyparquet refuses these when the group is read
      const start = Number(m.dictionary_page_offset || m.data_page_offset);
      const end = start + Number(m.total_compressed_size);
      if (!(start >= 4 && end <= footerStart && end >= start)) {
        fail(`bad parquet footer: row group ${k} column '${m.path_in_schema.join('.')}' claims bytes ${start}..${end}, outside the data (4..${footerStart})`);
      }
    }
  });
  if (sum !== rows) fail(`bad parquet footer: num_rows is ${rows} but the row groups hold ${sum}`);
  let names: string[];
  try {
    names = parquetSchema(meta).children.map(c => c.element.name);
  } catch (e) {
    return fail(`bad parquet schema (${message(e)})`);
  }
  const missing = need.filter(c => !names.includes(c));
  if (missing.length) fail(`no column ${missing.map(c => `'${c}'`).join(', ')} (its columns: ${names.join(', ') || 'none'})`);
  return { file, buf, meta, rows };
}

function bytesOf(v: unknown, what: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v && typeof v === 'object' && 'bytes' in v && (v as { bytes: unknown }).bytes instanceof Uint8Array) return (v as { bytes: Uint8Array }).bytes;
  if (typeof v === 'string') return Buffer.from(v, 'base64');
  throw new Error(`${what} is not image bytes`);
}

/** Decode a cell's image bytes; a failure names the column, not sharp's '<buffer>'. */
async function decodeImage(v: unknown, column: string): Promise<ImageU8> {
  const bytes = bytesOf(v, `'${column}'`);
  try {
    return await loadImage(bytes);
  } catch (e) {
    if (e instanceof FormatError && e.file === '<buffer>') throw new Error(`'${column}': ${e.message.slice('<buffer>: '.length)}`);
    throw e;
  }
}

async function decodeMask(v: unknown, w: number, h: number): Promise<Uint8Array> {
  let m: unknown = v;
  if (typeof m === 'string' && (m.startsWith('[') || m.startsWith('{'))) m = JSON.parse(m);
  if (Array.isArray(m)) {
    if (m.length !== h || !m.every(r => Array.isArray(r) && r.length === w)) throw new Error(`mask is ${m.length}x${Array.isArray(m[0]) ? m[0].length : '?'} but the image is ${h}x${w}`);
    const out = new Uint8Array(w * h);
    (m as unknown[][]).forEach((r, y) => r.forEach((x, k) => (out[y * w + k] = x ? 1 : 0)));
    return out;
  }
  const img = await decodeImage(m, 'mask');
  if (img.width !== w || img.height !== h) throw new Error(`mask is ${img.width}x${img.height} but the image is ${w}x${h}`);
  const out = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) out[i] = img.data[i * 3] > 0 ? 1 : 0;
  return out;
}

export async function parquetRowCount(file: string): Promise<number> {
  return (await openParquet(file)).rows;
}

/** One row range read; the rows come back in order, or the read throws. */
async function readRange(pf: ParquetFile, buf: AsyncBuffer, rowStart: number, rowEnd: number): Promise<Row[]> {
  const part = (await parquetReadObjects({ file: buf, metadata: pf.meta, rowStart, rowEnd, utf8: false, useOffsetIndex: true })) as Row[];
  if (part.length !== rowEnd - rowStart) throw new Error(`${part.length} rows for rows ${rowStart}..${rowEnd}`);
  return part;
}

/**
 * The rows of a checked file, in order, `CHUNK` at a time within each row group. A chunk that does
 * not read is read again row by row; each row that still fails goes to `bad` with hyparquet's reason
 * (see the header comment for when that is one page and when the whole row group). `want` limits
 * the rows read (chunks with none wanted are not read; unwanted bad rows are not reported).
 */
async function* rows(pf: ParquetFile, bad: (index: number, reason: string) => void, want?: (index: number) => boolean): AsyncGenerator<{ row: Row; index: number }> {
  let groupStart = 0;
  for (let g = 0; g < pf.meta.row_groups.length; g++) {
    const groupEnd = groupStart + Number(pf.meta.row_groups[g].num_rows);
    // the slices hyparquet asks for, kept for this row group only (retries re-decode, never re-read)
    const buf = cachedAsyncBuffer(pf.buf, { minSize: 0 });
    for (let s = groupStart; s < groupEnd; s += CHUNK) {
      const e = Math.min(groupEnd, s + CHUNK);
      const idx = Array.from({ length: e - s }, (_, k) => s + k).filter(i => !want || want(i));
      if (!idx.length) continue;
      let part: Row[] | undefined;
      try {
        part = await readRange(pf, buf, s, e);
      } catch {
        part = undefined;
      }
      for (const i of idx) {
        if (part) { yield { row: part[i - s], index: i }; continue; }
        let row: Row;
        try {
          row = (await readRange(pf, buf, i, i + 1))[0];
        } catch (err) {
          bad(i, `${pf.file}: row group ${g}: unreadable parquet page (${message(err)})`);
          continue;
        }
        yield { row, index: i };
      }
    }
    groupStart = groupEnd;
  }
}

/** Evaluation rows as samples for evaluate(); unreadable and malformed rows go to `skipped`. */
export async function* parquetEvalSamples(file: string, skipped: Skipped[]): AsyncGenerator<EvalSample> {
  const pf = await openParquet(file, EVAL_COLUMNS);
  for await (const { row, index } of rows(pf, (i, reason) => skipped.push({ id: `row ${i}`, reason }))) {
    const id = `${row.image_id ?? index}-${row.ann_id ?? index}`;
    try {
      if (typeof row.text !== 'string' || !row.text) throw new Error("no 'text'");
      const image: ImageU8 = await decodeImage(row.image, 'image');
      const w = Number(row.img_width ?? image.width);
      const h = Number(row.img_height ?? image.height);
      if (w !== image.width || h !== image.height) throw new Error(`img_width/img_height ${w}x${h} differ from the image ${image.width}x${image.height}`);
      yield { id, image, query: row.text, mask: await decodeMask(row.mask, w, h) };
    } catch (e) {
      skipped.push({ id, reason: (e as Error).message });
    }
  }
}

/**
 * The released run's training subset (DPAD `verl/utils/rl_dataset.py`): a set of more than 3,000
 * rows is cut to `Dataset.shuffle(seed=SEED).select(range(3000))`, SEED defaulting to 9, i.e. the
 * rows `numpy.random.default_rng(9).permutation(n)[:3000]` in that order (REFERENCE §9). With the
 * 9,000-row `refCOCOg_9k_840` this gives `../shared/data/refcocog_9k_subset3000_seed9.json`; with
 * the 2k set the cut does nothing.
 */
export const RELEASED_SUBSET = { size: 3000, seed: 9 } as const;

export interface TrainSubsetOptions {
  /** rows kept when the file has more (default 3000, the released subset); `false` keeps every row in file order */
  subset?: number | false;
  /** the shuffle seed, DPAD's `SEED` environment variable (default 9) */
  seed?: number;
}

/**
 * Training rows as TrainSamples, by default the released subset (`RELEASED_SUBSET`): the shuffled
 * selection of numpy's `default_rng(seed).permutation`, returned in the shuffled order, as the
 * released dataset indexes them. Rows that fail to decode are skipped and listed.
 */
export async function parquetTrainSamples(file: string, skipped: Skipped[], opts: TrainSubsetOptions = {}): Promise<TrainSample[]> {
  const pf = await openParquet(file, TRAIN_COLUMNS);
  const n = pf.rows;
  const size = opts.subset ?? RELEASED_SUBSET.size;
  if (size !== false && (!Number.isSafeInteger(size) || size < 0)) throw new Error(`parquetTrainSamples: subset must be a non-negative integer or false, got ${size}`);
  const order = size === false ? Array.from({ length: n }, (_, i) => i) : shuffledSubset(n, size, opts.seed ?? RELEASED_SUBSET.seed);
  // row index -> position in the returned list
  const slot = new Map(order.map((r, k) => [r, k]));
  const out: (TrainSample | undefined)[] = new Array(order.length);
  const bad = (i: number, reason: string) => skipped.push({ id: String(i), reason });
  for await (const { row, index } of rows(pf, bad, i => slot.has(i))) {
    const k = slot.get(index);
    if (k === undefined) continue;
    try {
      if (typeof row.problem !== 'string' || !row.problem) throw new Error("no 'problem'");
      if (typeof row.solution !== 'string' || !/<box>/.test(row.solution)) throw new Error("no '<box>' in 'solution'");
      out[k] = { image: await decodeImage(row.image, 'image'), query: row.problem, solution: row.solution };
    } catch (e) {
      skipped.push({ id: String(index), reason: (e as Error).message });
    }
  }
  return out.filter((s): s is TrainSample => s !== undefined);
}
