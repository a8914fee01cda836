/**
 * Evaluation metrics (SPEC section 4): gIoU / cIoU over masks, think-token statistics, and the
 * discriminative scores S1/S2/SNR (caption) and TS1/TS2/TSNR (think text), reported x100,
 * optionally stratified by labels such as query type and difficulty.
 */

/** Intersection and union of two binary masks of equal size (non-zero = inside). */
export function maskIntersectionUnion(pred: ArrayLike<number>, gt: ArrayLike<number>): { i: number; u: number } {
  if (pred.length !== gt.length) throw new Error(`metrics: prediction has ${pred.length} pixels, ground truth ${gt.length}`);
  let i = 0;
  let u = 0;
  for (let k = 0; k < pred.length; k++) {
    const a = pred[k] !== 0;
    const b = gt[k] !== 0;
    if (a && b) i++;
    if (a || b) u++;
  }
  return { i, u };
}

/** IoU of one sample from its intersection and union (1 when both masks are empty) */
export function iouOf(r: { i: number; u: number }): number {
  return r.u ? r.i / r.u : 1;
}

/** |gt|: the union a failed parse counts (I = 0, U = |gt|) */
export function maskArea(m: ArrayLike<number>): number {
  let n = 0;
  for (let k = 0; k < m.length; k++) if (m[k] !== 0) n++;
  return n;
}

export interface Summary {
  n: number;
  mean: number;
  /** population standard deviation (numpy's default) */
  std: number;
  median: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  if (n === 0) return { n: 0, mean: 0, std: 0, median: 0, min: 0, max: 0 };
  let s = 0;
  for (const v of values) s += v;
  const mean = s / n;
  let q = 0;
  for (const v of values) q += (v - mean) ** 2;
  const sorted = [...values].sort((a, b) => a - b);
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { n, mean, std: Math.sqrt(q / n), median, min: sorted[0], max: sorted[n - 1] };
}

/** One evaluated sample as the metrics see it. */
export interface SampleRecord {
  i: number;
  u: number;
  /** think tokens (policy tokenizer, no special tokens); null when there is no think text */
  tokens?: number | null;
  /** caption vs GT-box crop / whole image (cosine, not x100); null when there is no caption */
  s1?: number | null;
  s2?: number | null;
  /** think text vs crop / whole image */
  ts1?: number | null;
  ts2?: number | null;
  /** strata, e.g. { type: 'Relation', difficulty: 'Hard' } */
  labels?: Record<string, string>;
}

export interface MetricTable {
  n: number;
  gIoU: number;
  cIoU: number;
  tokens: Summary;
  /** x100, like the paper */
  S1: number;
  S2: number;
  /** S1 / S2 of the means */
  SNR: number;
  TS1: number;
  TS2: number;
  TSNR: number;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/** gIoU = mean of I/U (0 when U = 0), cIoU = sum I / sum U (0 when sum U = 0). */
export function giouCiou(records: readonly { i: number; u: number }[]): { gIoU: number; cIoU: number } {
  let si = 0;
  let su = 0;
  const ious: number[] = [];
  for (const r of records) {
    ious.push(r.u > 0 ? r.i / r.u : 0);
    si += r.i;
    su += r.u;
  }
  return { gIoU: mean(ious), cIoU: su > 0 ? si / su : 0 };
}

export function metricTable(records: readonly SampleRecord[]): MetricTable {
  const { gIoU, cIoU } = giouCiou(records);
  const pick = (k: 'tokens' | 's1' | 's2' | 'ts1' | 'ts2') => records.map(r => r[k]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const S1 = mean(pick('s1')) * 100;
  const S2 = mean(pick('s2')) * 100;
  const TS1 = mean(pick('ts1')) * 100;
  const TS2 = mean(pick('ts2')) * 100;
  return {
    n: records.length, gIoU, cIoU, tokens: summarize(pick('tokens')),
    S1, S2, SNR: S2 !== 0 ? S1 / S2 : 0, TS1, TS2, TSNR: TS2 !== 0 ? TS1 / TS2 : 0,
  };
}

/** The overall table and one per value of each label key present in the records. */
export function stratifiedTables(records: readonly SampleRecord[]): { all: MetricTable; strata: Record<string, Record<string, MetricTable>> } {
  const strata: Record<string, Record<string, MetricTable>> = {};
  const keys = new Set<string>();
  for (const r of records) for (const k of Object.keys(r.labels ?? {})) keys.add(k);
  for (const k of keys) {
    const groups = new Map<string, SampleRecord[]>();
    for (const r of records) {
      const v = r.labels?.[k];
      if (v === undefined) continue;
      if (!groups.has(v)) groups.set(v, []);
      groups.get(v)!.push(r);
    }
    strata[k] = Object.fromEntries([...groups].sort(([a], [b]) => a.localeCompare(b)).map(([v, rs]) => [v, metricTable(rs)]));
  }
  return { all: metricTable(records), strata };
}

/** Streaming accumulator of gIoU / cIoU for long evaluations. */
export class IoUAccumulator {
  private sumIou = 0;
  private sumI = 0;
  private sumU = 0;
  private count = 0;

  add(i: number, u: number): void {
    this.sumIou += u > 0 ? i / u : 0;
    this.sumI += i;
    this.sumU += u;
    this.count++;
  }

  get n(): number {
    return this.count;
  }
  get gIoU(): number {
    return this.count ? this.sumIou / this.count : 0;
  }
  get cIoU(): number {
    return this.sumU > 0 ? this.sumI / this.sumU : 0;
  }
}
