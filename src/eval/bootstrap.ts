/**
 * Seeded bootstrap over samples: a statistic of n per-sample values, recomputed on `resamples`
 * draws of n sample indices with replacement, gives a percentile interval (numpy's default
 * linear interpolation of the sorted resampled statistics). The paired forms draw ONE set of
 * indices per resample and use it for both arrays, so a before/after difference keeps each
 * sample's pairing. The same seed gives the same interval.
 * - bootstrapMean: the mean of per-sample values;
 * - bootstrapGIoU: gIoU = the mean of per-sample IoUs as giouCiou pools them (a parse failure
 *   is IoU 0, a dropped sample is `null` and is left out of every resample's mean);
 * - bootstrapPairedMeanDiff / bootstrapPairedGIoUDiff: mean(after) - mean(before).
 * halfWidth = (hi - lo) / 2, the figure the "95 % confidence half-width" names.
 */
import seedrandom from 'seedrandom';

export interface BootstrapInterval {
  /** the statistic on the samples as given (not the mean of the resamples) */
  estimate: number;
  /** the (1 - level) / 2 and (1 + level) / 2 percentiles of the resampled statistic */
  lo: number;
  hi: number;
  /** (hi - lo) / 2 */
  halfWidth: number;
}

export interface BootstrapOptions {
  /** resamples drawn (default 2000) */
  resamples?: number;
  /** the seed of the index draws (default 0) */
  seed?: number | string;
  /** the interval's coverage (default 0.95) */
  level?: number;
}

export const DEFAULT_BOOTSTRAP_RESAMPLES = 2000;

/** numpy.percentile(sorted, q) with the default 'linear' method; `sorted` ascending, q in [0, 100] */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('bootstrap: percentile of an empty list');
  const pos = (q / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

function checkOptions(opts: BootstrapOptions): { resamples: number; level: number; seed: string } {
  const resamples = opts.resamples ?? DEFAULT_BOOTSTRAP_RESAMPLES;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 1) throw new Error(`bootstrap: resamples must be a whole number >= 1, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new Error(`bootstrap: level must be in (0, 1), got ${level}`);
  return { resamples, level, seed: String(opts.seed ?? 0) };
}

/**
 * The percentile interval of `stat` over n samples: `stat(idx)` computes the statistic of the
 * samples at the indices `idx` (length n, repeats allowed). n = 0 gives an interval of zeros.
 */
export function bootstrap(n: number, stat: (idx: Int32Array) => number, opts: BootstrapOptions = {}): BootstrapInterval {
  const { resamples, level, seed } = checkOptions(opts);
  if (!Number.isInteger(n) || n < 0) throw new Error(`bootstrap: the sample count must be a whole number >= 0, got ${n}`);
  if (n === 0) return { estimate: 0, lo: 0, hi: 0, halfWidth: 0 };
  const idx = new Int32Array(n);
  for (let k = 0; k < n; k++) idx[k] = k;
  const estimate = stat(idx);
  const rng = seedrandom(`bootstrap:${seed}`);
  const stats = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    for (let k = 0; k < n; k++) idx[k] = Math.floor(rng() * n);
    stats[b] = stat(idx);
  }
  stats.sort();
  const lo = percentileSorted(stats, ((1 - level) / 2) * 100);
  const hi = percentileSorted(stats, ((1 + level) / 2) * 100);
  return { estimate, lo, hi, halfWidth: (hi - lo) / 2 };
}

/** `values` as numbers or null (left out), each finite; `what` names the array in errors */
function checked(values: readonly (number | null)[], what: string, allowNull = true): readonly (number | null)[] {
  values.forEach((v, k) => {
    if (v === null && allowNull) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`bootstrap: ${what}[${k}] is not a finite number (${String(v)})`);
  });
  return values;
}

/** the mean of values[idx[k]] over the non-null ones (0 when all are null, as giouCiou's empty mean) */
function meanAt(values: readonly (number | null)[], idx: Int32Array): number {
  let s = 0;
  let c = 0;
  for (let k = 0; k < idx.length; k++) {
    const v = values[idx[k]];
    if (v === null) continue;
    s += v;
    c++;
  }
  return c ? s / c : 0;
}

/** the mean of per-sample values and its percentile interval */
export function bootstrapMean(values: readonly number[], opts: BootstrapOptions = {}): BootstrapInterval {
  const v = checked(values, 'values', false);
  return bootstrap(v.length, idx => meanAt(v, idx), opts);
}

/**
 * Per-sample IoUs as giouCiou counts them: I/U (0 when U = 0, e.g. a parse failure with an empty
 * ground truth), null for a dropped sample (`counted: false`).
 */
export function sampleIoUs(records: readonly { i: number; u: number; counted?: boolean }[]): (number | null)[] {
  return records.map(r => (r.counted === false ? null : r.u > 0 ? r.i / r.u : 0));
}

/** gIoU (the mean of the per-sample IoUs; null = dropped, left out) and its percentile interval */
export function bootstrapGIoU(ious: readonly (number | null)[], opts: BootstrapOptions = {}): BootstrapInterval {
  const v = checked(ious, 'ious');
  return bootstrap(v.length, idx => meanAt(v, idx), opts);
}

function paired(before: readonly (number | null)[], after: readonly (number | null)[], opts: BootstrapOptions, allowNull: boolean): BootstrapInterval {
  if (before.length !== after.length) throw new Error(`bootstrap: a paired difference needs the same samples before and after, got ${before.length} before and ${after.length} after`);
  const b = checked(before, 'before', allowNull);
  const a = checked(after, 'after', allowNull);
  return bootstrap(b.length, idx => meanAt(a, idx) - meanAt(b, idx), opts);
}

/** mean(after) - mean(before) over the same samples (index k is one sample in both) */
export function bootstrapPairedMeanDiff(before: readonly number[], after: readonly number[], opts: BootstrapOptions = {}): BootstrapInterval {
  return paired(before, after, opts, false);
}

/** gIoU(after) - gIoU(before) over the same samples (null = dropped, left out of that side's mean) */
export function bootstrapPairedGIoUDiff(before: readonly (number | null)[], after: readonly (number | null)[], opts: BootstrapOptions = {}): BootstrapInterval {
  return paired(before, after, opts, true);
}
