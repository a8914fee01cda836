import './helpers/setup.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IoUAccumulator, giouCiou, maskArea, maskIntersectionUnion, metricTable, stratifiedTables, summarize } from '../src/eval/metrics.ts';

test('intersection and union of masks; a failed parse counts U = |gt|', () => {
  assert.equal(maskIntersectionUnion([1, 1, 0, 0], [0, 1, 1, 0]), { i: 1, u: 3 });
  assert.is(maskArea([0, 3, 1]), 2);
  assert.throws(() => maskIntersectionUnion([1], [1, 0]), /1 pixels, ground truth 2/);
});

test('gIoU averages I/U with 0 for an empty union; cIoU pools', () => {
  const r = giouCiou([{ i: 1, u: 2 }, { i: 0, u: 0 }, { i: 3, u: 4 }]);
  assert.ok(Math.abs(r.gIoU - (0.5 + 0 + 0.75) / 3) < 1e-15);
  assert.ok(Math.abs(r.cIoU - 4 / 6) < 1e-15);
  const acc = new IoUAccumulator();
  for (const x of [{ i: 1, u: 2 }, { i: 0, u: 0 }, { i: 3, u: 4 }]) acc.add(x.i, x.u);
  assert.is(acc.gIoU, r.gIoU);
  assert.is(acc.cIoU, r.cIoU);
});

test('summaries and the paper-style table with strata', () => {
  assert.equal(summarize([1, 2, 3, 10]), { n: 4, mean: 4, std: Math.sqrt(12.5), median: 2.5, min: 1, max: 10 });
  const recs = [
    { i: 1, u: 1, tokens: 10, s1: 0.3, s2: 0.2, ts1: 0.25, ts2: 0.25, labels: { type: 'Attribute' } },
    { i: 0, u: 1, tokens: 30, s1: 0.1, s2: 0.2, ts1: null, ts2: null, labels: { type: 'Logic' } },
  ];
  const t = metricTable(recs);
  assert.is(t.gIoU, 0.5);
  assert.ok(Math.abs(t.S1 - 20) < 1e-9 && Math.abs(t.S2 - 20) < 1e-9 && Math.abs(t.SNR - 1) < 1e-9);
  assert.ok(Math.abs(t.TS1 - 25) < 1e-9);
  assert.is(t.tokens.mean, 20);
  const st = stratifiedTables(recs);
  assert.equal(Object.keys(st.strata.type), ['Attribute', 'Logic']);
  assert.is(st.strata.type.Logic.gIoU, 0);
});

test.run();
