import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluate, readResults, type EvalSample } from '../src/eval/evaluate.ts';
import { evaluateMasks, giouCiou, metricTable, sampleOutcome } from '../src/eval/metrics.ts';
import { countedThink, recordedThink, thinkTokenStats, tokenCountStats } from '../src/eval/tokens.ts';
import { answerGeometry, bestMaskIndex, type Segmenter, type SegmentResult } from '../src/pipeline/segment.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-eval-released-'));

test('a parsed sample with union 0 is dropped; a parse failure counts I = 0, U = |gt| even when U = 0', () => {
  const empty = [0, 0, 0, 0];
  assert.equal(sampleOutcome(empty, empty), { i: 0, u: 0, counted: false });
  assert.equal(sampleOutcome(null, empty), { i: 0, u: 0, counted: true });
  assert.equal(sampleOutcome(null, [1, 1, 0, 0]), { i: 0, u: 2, counted: true });
  assert.equal(sampleOutcome([1, 0, 0, 0], [1, 1, 0, 0]), { i: 1, u: 2, counted: true });
  const r = evaluateMasks([[1, 0, 0, 0], empty, null, null], [[1, 1, 0, 0], empty, [1, 0, 0, 0], empty]);
  assert.equal(r.outcomes.map(o => o.counted), [true, false, true, true]);
  // counted: 1/2, 0/1, 0/0 -> 0; the dropped sample is in neither mean
  assert.is(r.gIoU, (0.5 + 0 + 0) / 3);
  assert.is(r.cIoU, 1 / 3);
  assert.equal(giouCiou(r.outcomes), { gIoU: r.gIoU, cIoU: r.cIoU });
  assert.throws(() => evaluateMasks([null], []), /1 predictions for 0 ground-truth masks/);
});

test('SNR and TSNR: mean of per-sample ratios and ratio of means, each reported; dropped samples counted apart', () => {
  const recs = [
    { i: 1, u: 2, s1: 0.3, s2: 0.2, ts1: 0.2, ts2: 0.1 },
    { i: 1, u: 1, s1: 0.2, s2: 0.4, ts1: 0.1, ts2: 0.1 },
    { i: 0, u: 0, counted: false, s1: 0.9, s2: 0.1, ts1: 0.9, ts2: 0.1 },
  ];
  const t = metricTable(recs);
  assert.is(t.n, 2);
  assert.is(t.dropped, 1);
  assert.is(t.gIoU, 0.75);
  assert.ok(Math.abs(t.S1 - 25) < 1e-12 && Math.abs(t.S2 - 30) < 1e-12);
  assert.ok(Math.abs(t.SNR - (1.5 + 0.5) / 2) < 1e-12, `mean of ratios ${t.SNR}`);
  assert.ok(Math.abs(t.SNR_ratio_of_means - 25 / 30) < 1e-12, `ratio of means ${t.SNR_ratio_of_means}`);
  assert.ok(Math.abs(t.TSNR - 1.5) < 1e-12);
  assert.ok(Math.abs(t.TSNR_ratio_of_means - 15 / 10) < 1e-12);
});

test('#Tok as get_tokens.py: empty thinks dropped, error strings of failures counted; population statistics', () => {
  const words = (t: string) => t.split(' ').map(w => w.length);
  const s = thinkTokenStats(['a b c', '', null, 'a', 'a b c d e f', 7], words)!;
  assert.equal(s.token_counts, [3, 1, 6]);
  assert.is(s.total_think_blocks, 3);
  assert.ok(Math.abs(s.mean_token_count - 10 / 3) < 1e-12);
  assert.ok(Math.abs(s.variance - ((3 - 10 / 3) ** 2 + (1 - 10 / 3) ** 2 + (6 - 10 / 3) ** 2) / 3) < 1e-12);
  assert.ok(Math.abs(s.std_deviation - Math.sqrt(s.variance)) < 1e-15);
  assert.equal([s.median_token_count, s.min_token_count, s.max_token_count], [3, 1, 6]);
  assert.is(tokenCountStats([4, 1, 2, 3])!.median_token_count, 2.5);
  assert.is(thinkTokenStats(['', null], words), null);
  const out = '<think>find the dog</think><answer>none</answer>';
  assert.is(recordedThink(out, null), 'find the dog');
  assert.is(recordedThink(out, 'boom'), '[Error]... boom');
  assert.is(countedThink(out, 'boom', 'released'), '[Error]... boom');
  assert.is(countedThink(out, 'boom', 'response'), 'find the dog');
  assert.is(recordedThink('<think>a<b</think>', null), '');
});

test('inference scale-back: round(int(v) * W / 840) half to even, fuzzy keys, no clamp to the image', () => {
  const g = answerGeometry('<answer>{"Pred_BBox": [259, -10, 900.7, 841], "points_a": [559, 1], "points_b": [1, 1]}</answer>', 1260, 840);
  assert.ok(!('error' in g));
  if ('error' in g) return;
  assert.equal(g.bbox, [388, -10, 1350, 841]);
  assert.equal(g.points, [[838, 1], [2, 1]]); // 559 * 1.5 = 838.5 -> 838
  assert.is(bestMaskIndex([0.5, 0.9, 0.9]), 2); // np.argsort(s)[::-1][0]
  assert.is(bestMaskIndex([0.95, 0.9, 0.1]), 0);
  const bad = answerGeometry('<answer>{"bbox": [1, 2, 3, 4]}</answer>', 100, 100);
  assert.ok('error' in bad);
  if ('error' in bad) assert.is(bad.error.detail, "cannot access local variable 'points' where it is not associated with a value");
});

const FAKE_WEIGHTS = { fingerprint: 'f'.repeat(64), policy: 'p', sam2: 's', clip: null };

function fakeSegmenter(results: Record<string, Partial<SegmentResult>>): Segmenter {
  const policy = { viewSize: 840, tokenizer: { encode: (t: string) => t.split(' ').map(w => w.length) } };
  return {
    policy,
    async segment(image: { width: number; height: number }, query: string) {
      const r = results[query];
      return { query, text: '', think: null, answer: null, caption: null, bbox: null, points: null, mask: null, score: null, view: 840, generatedTokens: 0, thinkTokens: 0, width: image.width, height: image.height, ...r };
    },
  } as unknown as Segmenter;
}

test('evaluate records as evaluation.py: dropped both-empty samples, failure think strings, #Tok countings, labelled SNR', async () => {
  const img = { width: 2, height: 2, channels: 3, data: new Uint8Array(12) };
  const samples: EvalSample[] = [
    { id: 'hit', image: img, query: 'hit', mask: Uint8Array.from([1, 1, 0, 0]) },
    { id: 'both-empty', image: img, query: 'both-empty', mask: new Uint8Array(4) },
    { id: 'failed', image: img, query: 'failed', mask: Uint8Array.from([1, 0, 0, 0]) },
    { id: 'failed-empty', image: img, query: 'failed-empty', mask: new Uint8Array(4) },
  ];
  const seg = fakeSegmenter({
    hit: { text: '<think>one two three</think><answer>{}</answer>', think: 'one two three', mask: Uint8Array.from([1, 0, 0, 0]) },
    'both-empty': { text: '<think>x y</think>', think: 'x y', mask: new Uint8Array(4) },
    failed: { text: '<think>a b</think><answer>none</answer>', think: 'a b', reason: 'answer does not parse', parseError: "cannot access local variable 'content_bbox' where it is not associated with a value" },
    'failed-empty': { text: 'nothing', reason: 'answer does not parse', parseError: 'boom' },
  });
  const out = path.join(tmp, 'released');
  const { records, tables } = await evaluate(seg, samples, samples.length, { outDir: out, worst: 0, figures: false, fingerprint: FAKE_WEIGHTS });
  const byId = Object.fromEntries(records.map(r => [r.id, r]));
  assert.equal([byId.hit.i, byId.hit.u, byId.hit.counted], [1, 2, true]);
  assert.is(byId['both-empty'].counted, false);
  assert.equal([byId.failed.i, byId.failed.u, byId.failed.counted], [0, 1, true]);
  assert.equal([byId['failed-empty'].i, byId['failed-empty'].u, byId['failed-empty'].counted], [0, 0, true]);
  assert.is(byId.failed.think, "[Error]... cannot access local variable 'content_bbox' where it is not associated with a value");
  assert.is(byId.failed.tokens, 14);
  assert.is(byId['failed-empty'].tokens, 2);
  assert.is(byId.hit.tokens, 3);
  assert.is(byId['both-empty'].tokens, null);
  assert.is(tables.all.n, 3);
  assert.is(tables.all.dropped, 1);
  assert.is(tables.all.gIoU, 0.5 / 3);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  assert.equal(giouCiou(readResults(path.join(out, 'results.jsonl'))), { gIoU: m.all.gIoU, cIoU: m.all.cIoU });
  assert.is(m.think_tokens.counting, 'released');
  assert.equal(m.think_tokens.token_counts, [3, 14, 2]);
  assert.match(m.definitions.SNR, /mean of per-sample ratios/);
  assert.match(m.definitions.SNR_ratio_of_means, /ratio of means/);
  const rep = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.match(rep, /SNR \(mean of ratios\) \| SNR \(ratio of means\)/);
  assert.match(rep, /Dropped .*: 1\./);
  // the cleaner count: the outputs' own think texts, no error strings
  const clean = await evaluate(seg, samples, samples.length, { outDir: path.join(tmp, 'clean'), worst: 0, figures: false, thinkTokens: 'response', fresh: true, fingerprint: FAKE_WEIGHTS });
  assert.equal(clean.records.map(r => r.tokens), [3, null, 2, null]);
});

test.run();
