import { test } from 'uvu';
import * as assert from 'uvu/assert';
import seedrandom from 'seedrandom';
import {
  bootstrap, bootstrapGIoU, bootstrapMean, bootstrapPairedGIoUDiff, bootstrapPairedMeanDiff, DEFAULT_BOOTSTRAP_RESAMPLES, percentileSorted, sampleIoUs,
} from '../src/eval/bootstrap.ts';
import { giouCiou } from '../src/eval/metrics.ts';

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol;

/** the documented procedure written out plainly: seedrandom(`bootstrap:<seed>`), n draws floor(rng() * n) per resample, numpy 'linear' percentiles */
function naive(values: number[], resamples: number, seed: number, level = 0.95, other?: number[]) {
  const rng = seedrandom(`bootstrap:${seed}`);
  const n = values.length;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const stats: number[] = [];
  for (let b = 0; b < resamples; b++) {
    const idx: number[] = [];
    for (let k = 0; k < n; k++) idx.push(Math.floor(rng() * n));
    const m = mean(idx.map(i => values[i]));
    stats.push(other ? mean(idx.map(i => other[i])) - m : m);
  }
  stats.sort((a, b) => a - b);
  const pct = (q: number) => {
    const pos = (q / 100) * (stats.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, stats.length - 1);
    return stats[lo] + (pos - lo) * (stats[hi] - stats[lo]);
  };
  return { lo: pct(((1 - level) / 2) * 100), hi: pct(((1 + level) / 2) * 100) };
}

test('percentileSorted is numpy.percentile with linear interpolation', () => {
  assert.is(percentileSorted([1, 2, 3, 4], 25), 1.75);
  assert.is(percentileSorted([1, 2, 3, 4], 50), 2.5);
  assert.is(percentileSorted([1, 2, 3, 4], 0), 1);
  assert.is(percentileSorted([1, 2, 3, 4], 100), 4);
  assert.ok(close(percentileSorted([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 97.5), 8.775));
  assert.is(percentileSorted([7], 2.5), 7);
  assert.throws(() => percentileSorted([], 50), /bootstrap: percentile of an empty list/);
});

test('constant values: the estimate is the constant and the interval has zero width', () => {
  const r = bootstrapMean(new Array(50).fill(0.3));
  assert.ok(close(r.estimate, 0.3) && close(r.lo, 0.3) && close(r.hi, 0.3), JSON.stringify(r));
  assert.ok(Math.abs(r.halfWidth) < 1e-12);
  assert.equal(bootstrapMean([0.7]), { estimate: 0.7, lo: 0.7, hi: 0.7, halfWidth: 0 });
  assert.equal(bootstrapMean([]), { estimate: 0, lo: 0, hi: 0, halfWidth: 0 });
});

test('a small vector matches the procedure written out plainly, and the seed fixes the result', () => {
  const v = [0, 0.1, 0.9, 0.4, 0.4, 1, 0.25, 0];
  const r = bootstrapMean(v, { resamples: 500, seed: 7 });
  const ref = naive(v, 500, 7);
  assert.ok(close(r.estimate, v.reduce((a, b) => a + b, 0) / v.length));
  assert.ok(close(r.lo, ref.lo) && close(r.hi, ref.hi), `${JSON.stringify(r)} vs ${JSON.stringify(ref)}`);
  assert.ok(close(r.halfWidth, (ref.hi - ref.lo) / 2));
  assert.ok(r.lo < r.estimate && r.estimate < r.hi);
  assert.equal(bootstrapMean(v, { resamples: 500, seed: 7 }), r, 'same seed, same interval');
  const r8 = bootstrapMean(v, { resamples: 500, seed: 8 });
  const ref8 = naive(v, 500, 8);
  assert.ok(close(r8.lo, ref8.lo) && close(r8.hi, ref8.hi), 'another seed: the draws of that seed');
  // a 90 % interval sits inside the 95 % one (same draws)
  const r90 = bootstrapMean(v, { resamples: 500, seed: 7, level: 0.9 });
  const ref90 = naive(v, 500, 7, 0.9);
  assert.ok(close(r90.lo, ref90.lo) && close(r90.hi, ref90.hi));
  assert.ok(r90.lo >= r.lo && r90.hi <= r.hi);
  // the default: 2000 resamples, seed 0
  const d = bootstrapMean(v);
  const refD = naive(v, DEFAULT_BOOTSTRAP_RESAMPLES, 0);
  assert.is(DEFAULT_BOOTSTRAP_RESAMPLES, 2000);
  assert.ok(close(d.lo, refD.lo) && close(d.hi, refD.hi));
});

test('gIoU: per-sample IoUs as giouCiou counts them (parse failure 0, dropped left out)', () => {
  // 2/4; a parse failure on an empty ground truth (U = 0, counted): 0; a dropped sample; 3/3
  const outcomes = [{ i: 2, u: 4 }, { i: 0, u: 0, counted: true }, { i: 0, u: 0, counted: false }, { i: 3, u: 3 }];
  const ious = sampleIoUs(outcomes);
  assert.equal(ious, [0.5, 0, null, 1]);
  const r = bootstrapGIoU(ious, { resamples: 300, seed: 1 });
  assert.ok(close(r.estimate, giouCiou(outcomes).gIoU));
  assert.ok(close(r.estimate, 0.5));
  assert.ok(r.lo >= 0 && r.hi <= 1 && r.lo < r.hi);
  // without nulls, gIoU's bootstrap is the plain mean's
  const plain = [0.5, 0, 0.25, 1];
  assert.equal(bootstrapGIoU(plain, { resamples: 300, seed: 1 }), bootstrapMean(plain, { resamples: 300, seed: 1 }));
  // every sample dropped: 0, like giouCiou's empty mean
  assert.equal(bootstrapGIoU([null, null], { resamples: 10 }), { estimate: 0, lo: 0, hi: 0, halfWidth: 0 });
});

test('paired difference: identical arrays give 0, a constant shift gives the shift, and the draws are shared', () => {
  const b = [0.1, 0.5, 0.2, 0.9, 0, 0.35];
  const same = bootstrapPairedMeanDiff(b, b.slice());
  assert.equal(same, { estimate: 0, lo: 0, hi: 0, halfWidth: 0 });
  const shifted = bootstrapPairedMeanDiff(b, b.map(x => x + 0.1));
  assert.ok(close(shifted.estimate, 0.1) && close(shifted.lo, 0.1) && close(shifted.hi, 0.1) && Math.abs(shifted.halfWidth) < 1e-12, JSON.stringify(shifted));
  const a = [0.3, 0.4, 0.6, 0.8, 0.2, 0.3];
  const r = bootstrapPairedMeanDiff(b, a, { resamples: 400, seed: 3 });
  const ref = naive(b, 400, 3, 0.95, a);
  assert.ok(close(r.lo, ref.lo) && close(r.hi, ref.hi), `${JSON.stringify(r)} vs ${JSON.stringify(ref)}`);
  assert.ok(close(r.estimate, a.reduce((x, y) => x + y, 0) / 6 - b.reduce((x, y) => x + y, 0) / 6));
  // gIoU form: nulls left out of each side's mean
  const g = bootstrapPairedGIoUDiff([0.5, null, 0], [1, 0.2, 0], { resamples: 50 });
  assert.ok(close(g.estimate, 0.4 - 0.25));
});

test('bad inputs name what is wrong', () => {
  assert.throws(() => bootstrapPairedMeanDiff([1, 2], [1]), (e: Error) => e.message === 'bootstrap: a paired difference needs the same samples before and after, got 2 before and 1 after');
  assert.throws(() => bootstrapMean([0, NaN]), (e: Error) => e.message === 'bootstrap: values[1] is not a finite number (NaN)');
  assert.throws(() => bootstrapMean([0, null as unknown as number]), (e: Error) => e.message === 'bootstrap: values[1] is not a finite number (null)');
  assert.throws(() => bootstrapGIoU([0, Infinity]), (e: Error) => e.message === 'bootstrap: ious[1] is not a finite number (Infinity)');
  assert.throws(() => bootstrapMean([1], { resamples: 0 }), (e: Error) => e.message === 'bootstrap: resamples must be a whole number >= 1, got 0');
  assert.throws(() => bootstrapMean([1], { level: 1 }), (e: Error) => e.message === 'bootstrap: level must be in (0, 1), got 1');
  assert.throws(() => bootstrap(-1, () => 0), (e: Error) => e.message === 'bootstrap: the sample count must be a whole number >= 0, got -1');
});

test.run();
