/**
 * Evaluation metrics (REFERENCE.md section 8): gIoU / cIoU over masks as the released evaluation
 * records and pools them, think-token statistics, and the discriminative scores S1/S2/SNR
 * (caption) and TS1/TS2/TSNR (think text), reported x100, optionally stratified by labels such as
 * query type and difficulty.
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

/**
 * One sample as evaluation.py records it (REFERENCE.md 8.2):
 * - a parse failure (`pred` null) records I = 0, U = |gt|, counted even when U = 0;
 * - a parsed sample whose union is 0 (prediction and ground truth both empty) is DROPPED:
 *   compute_iou returns the int 0, which cannot be unpacked, and the loop `continue`s;
 * - otherwise I = |pred & gt|, U = |pred | gt|.
 */
export interface SampleOutcome {
  i: number;
  u: number;
  /** false for a dropped sample: it is in no metric */
  counted: boolean;
}

export function sampleOutcome(pred: ArrayLike<number> | null, gt: ArrayLike<number>): SampleOutcome {
  if (pred === null) return { i: 0, u: maskArea(gt), counted: true };
  const { i, u } = maskIntersectionUnion(pred, gt);
  return { i, u, counted: u > 0 };
}

/** The released evaluation over a batch: per-sample I, U, counted, and gIoU / cIoU of the counted. */
export function evaluateMasks(preds: readonly (ArrayLike<number> | null)[], gts: readonly ArrayLike<number>[]): { outcomes: SampleOutcome[]; gIoU: number; cIoU: number } {
  if (preds.length !== gts.length) throw new Error(`metrics: ${preds.length} predictions for ${gts.length} ground-truth masks`);
  const outcomes = preds.map((p, k) => sampleOutcome(p, gts[k]));
  return { outcomes, ...giouCiou(outcomes) };
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
  /** false: the sample was dropped (parsed, union 0) and is in no metric; absent means counted */
  counted?: boolean;
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
  /** counted samples */
  n: number;
  /** samples dropped by the released rule (parsed, prediction and ground truth both empty) */
  dropped: number;
  gIoU: number;
  cIoU: number;
  tokens: Summary;
  /** mean of 100 * cos over the samples that have the score, like the paper */
  S1: number;
  S2: number;
  /** SNR as the mean of per-sample ratios mean_i(S1_i / S2_i) (samples with S2_i > 0): the paper's likely reading */
  SNR: number;
  /** SNR as the ratio of the means, S1 / S2 */
  SNR_ratio_of_means: number;
  TS1: number;
  TS2: number;
  /** TSNR as the mean of per-sample ratios mean_i(TS1_i / TS2_i) */
  TSNR: number;
  /** TSNR as the ratio of the means, TS1 / TS2 */
  TSNR_ratio_of_means: number;
}

/** What each MetricTable key means (written beside the tables in metrics.json). */
export const METRIC_DEFINITIONS: Record<string, string> = {
  n: 'samples counted (a parse failure counts with I = 0, U = |gt|)',
  dropped: 'samples dropped as the released evaluation drops them: the output parsed and prediction and ground truth are both empty',
  gIoU: 'mean over counted samples of I/U (0 when U = 0)',
  cIoU: 'sum I / sum U (0 when the sum of U is 0)',
  tokens: 'think tokens per sample (see think_tokens.counting)',
  S1: 'mean of 100 * cos(caption, ground-truth-box crop)',
  S2: 'mean of 100 * cos(caption, whole image)',
  SNR: 'mean of per-sample ratios S1_i / S2_i (samples with S2_i > 0)',
  SNR_ratio_of_means: 'ratio of means S1 / S2',
  TS1: 'mean of 100 * cos(think text truncated to 77 CLIP ids, ground-truth-box crop)',
  TS2: 'mean of 100 * cos(think text, whole image)',
  TSNR: 'mean of per-sample ratios TS1_i / TS2_i (samples with TS2_i > 0)',
  TSNR_ratio_of_means: 'ratio of means TS1 / TS2',
};

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/**
 * calculate_iou.py over recorded samples: gIoU = mean of I/U (0 when U = 0), cIoU = sum I / sum U
 * (0 when sum U = 0). Records with `counted: false` (dropped) are left out.
 */
export function giouCiou(records: readonly { i: number; u: number; counted?: boolean }[]): { gIoU: number; cIoU: number } {
  let si = 0;
  let su = 0;
  const ious: number[] = [];
  for (const r of records) {
    if (r.counted === false) continue;
    ious.push(r.u > 0 ? r.i / r.u : 0);
    si += r.i;
    su += r.u;
  }
  return { gIoU: mean(ious), cIoU: su > 0 ? si / su : 0 };
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** mean_i(a_i / b_i) over the records where both are numbers and b_i > 0 (0 when there is none) */
function meanOfRatios(records: readonly SampleRecord[], a: 's1' | 'ts1', b: 's2' | 'ts2'): number {
  const r: number[] = [];
  for (const x of records) {
    const p = x[a];
    const q = x[b];
    if (num(p) && num(q) && q > 0) r.push(p / q);
  }
  return mean(r);
}

export function metricTable(all: readonly SampleRecord[]): MetricTable {
  const records = all.filter(r => r.counted !== false);
  const { gIoU, cIoU } = giouCiou(records);
  const pick = (k: 'tokens' | 's1' | 's2' | 'ts1' | 'ts2') => records.map(r => r[k]).filter(num);
  const S1 = mean(pick('s1')) * 100;
  const S2 = mean(pick('s2')) * 100;
  const TS1 = mean(pick('ts1')) * 100;
  const TS2 = mean(pick('ts2')) * 100;
  return {
    n: records.length, dropped: all.length - records.length, gIoU, cIoU, tokens: summarize(pick('tokens')),
    S1, S2, SNR: meanOfRatios(records, 's1', 's2'), SNR_ratio_of_means: S2 !== 0 ? S1 / S2 : 0,
    TS1, TS2, TSNR: meanOfRatios(records, 'ts1', 'ts2'), TSNR_ratio_of_means: TS2 !== 0 ? TS1 / TS2 : 0,
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
