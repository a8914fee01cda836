/**
 * Seg-Zero's parquet releases, streamed a chunk of rows at a time through hyparquet.
 * - training (`refCOCOg_*_840`): `image`, `problem` (the query), `solution` (`<box>..</box><points>..</points>`)
 * - evaluation (ReasonSeg / RefCOCO splits): `image`, `text`, `mask`, `image_id`, `ann_id`, `img_height`, `img_width`
 * Images come as encoded bytes (or HF's {bytes, path} struct); masks as nested lists, JSON, or
 * encoded images. A malformed row is skipped and counted with its reason.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { loadImage } from '../io/image.ts';
import type { ImageU8 } from '../io/resample.ts';
import type { EvalSample } from '../eval/evaluate.ts';
import type { TrainSample } from '../rl/trainer.ts';
import type { Skipped } from './reasonseg.ts';
import { shuffledSubset } from './numpy_rng.ts';

type Row = Record<string, unknown>;

function bytesOf(v: unknown, what: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v && typeof v === 'object' && 'bytes' in v && (v as { bytes: unknown }).bytes instanceof Uint8Array) return (v as { bytes: Uint8Array }).bytes;
  if (typeof v === 'string') return Buffer.from(v, 'base64');
  throw new Error(`${what} is not image bytes`);
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
  const img = await loadImage(bytesOf(m, 'mask'));
  if (img.width !== w || img.height !== h) throw new Error(`mask is ${img.width}x${img.height} but the image is ${w}x${h}`);
  const out = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) out[i] = img.data[i * 3] > 0 ? 1 : 0;
  return out;
}

export async function parquetRowCount(file: string): Promise<number> {
  const meta = await parquetMetadataAsync(await asyncBufferFromFile(file));
  return Number(meta.num_rows);
}

async function* rows(file: string, chunk = 64): AsyncGenerator<{ row: Row; index: number }> {
  const buf = await asyncBufferFromFile(file);
  const meta = await parquetMetadataAsync(buf);
  const n = Number(meta.num_rows);
  for (let s = 0; s < n; s += chunk) {
    const part = (await parquetReadObjects({ file: buf, metadata: meta, rowStart: s, rowEnd: Math.min(n, s + chunk), utf8: false })) as Row[];
    for (let k = 0; k < part.length; k++) yield { row: part[k], index: s + k };
  }
}

/** Evaluation rows as samples for evaluate(). */
export async function* parquetEvalSamples(file: string, skipped: Skipped[]): AsyncGenerator<EvalSample> {
  for await (const { row, index } of rows(file)) {
    const id = `${row.image_id ?? index}-${row.ann_id ?? index}`;
    try {
      if (typeof row.text !== 'string' || !row.text) throw new Error("no 'text'");
      const image: ImageU8 = await loadImage(bytesOf(row.image, 'image'));
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
  const n = await parquetRowCount(file);
  const size = opts.subset ?? RELEASED_SUBSET.size;
  if (size !== false && (!Number.isSafeInteger(size) || size < 0)) throw new Error(`parquetTrainSamples: subset must be a non-negative integer or false, got ${size}`);
  const order = size === false ? Array.from({ length: n }, (_, i) => i) : shuffledSubset(n, size, opts.seed ?? RELEASED_SUBSET.seed);
  // row index -> position in the returned list
  const slot = new Map(order.map((r, k) => [r, k]));
  const out: (TrainSample | undefined)[] = new Array(order.length);
  for await (const { row, index } of rows(file)) {
    const k = slot.get(index);
    if (k === undefined) continue;
    try {
      if (typeof row.problem !== 'string' || !row.problem) throw new Error("no 'problem'");
      if (typeof row.solution !== 'string' || !/<box>/.test(row.solution)) throw new Error("no '<box>' in 'solution'");
      out[k] = { image: await loadImage(bytesOf(row.image, 'image')), query: row.problem, solution: row.solution };
    } catch (e) {
      skipped.push({ id: String(index), reason: (e as Error).message });
    }
  }
  return out.filter((s): s is TrainSample => s !== undefined);
}
