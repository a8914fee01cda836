/**
 * evaluate() generates `batchSize` samples at a time (Segmenter.segmentBatch): its records,
 * metrics and provenance equal batch 1's, a batch-1 folder resumes with another batch size, and a
 * failure mid-batch loses at most that batch.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { worldSample } from '../src/data/world/generator.ts';
import { evaluate, readResults, readResultsFile, type EvalRecord, type EvalSample } from '../src/eval/evaluate.ts';
import { loadWeights } from '../src/pipeline/bundle.ts';
import { Segmenter } from '../src/pipeline/segment.ts';
import { tinyPolicy, tinySam } from './helpers/world.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-eval-batched-'));
const mk = (n: number, size = 64): EvalSample => {
  const s = worldSample('test', n, { size });
  return { id: s.id, image: s.image, query: s.query, mask: s.mask, labels: { type: s.type, difficulty: s.difficulty } };
};
const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), 'utf8');

/** counts the samples that reach segmentBatch, and the size of each call */
function countCalls(seg: Segmenter) {
  const calls: number[] = [];
  const orig = seg.segmentBatch.bind(seg);
  seg.segmentBatch = async (items, o) => {
    calls.push(items.length);
    return orig(items, o);
  };
  return { calls, restore: () => void (seg.segmentBatch = orig) };
}

test('the demo weights on 5 world samples: batch 3 writes what batch 1 writes (records, metrics, report); no tensor leak', async () => {
  const base = tf.memory().numTensors;
  const w = loadWeights('weights/demo');
  // images of two sizes, so the batch holds different frames
  const samples = () => [0, 1, 2, 3, 4].map(k => mk(k, k % 2 ? 96 : 128));
  const opts = { scorer: w.scorer, maxNewTokens: 96, worst: 2, figures: false, data: 'world:test:5' };
  const one = path.join(tmp, 'b1'), three = path.join(tmp, 'b3');
  const before = tf.memory().numTensors;
  const r1 = await evaluate(w.segmenter, samples(), 5, { ...opts, outDir: one, batchSize: 1 });
  assert.is(tf.memory().numTensors, before, 'batch 1: no tensor leak');
  const { calls, restore } = countCalls(w.segmenter);
  const r3 = await evaluate(w.segmenter, samples(), 5, { ...opts, outDir: three, batchSize: 3 });
  restore();
  assert.is(tf.memory().numTensors, before, 'batch 3: no tensor leak');
  assert.equal(calls, [3, 2], 'two generations of 3 and 2 samples');
  assert.equal(r3.records, r1.records);
  assert.equal(r3.tables, r1.tables);
  assert.equal(r1.records.map(r => r.id), ['test-0', 'test-1', 'test-2', 'test-3', 'test-4'], 'input order');
  // the same bytes on disk: records (no timing fields), metrics.json with its provenance, report
  for (const f of ['results.jsonl', 'metrics.json', 'report.md', 'worst/index.md']) assert.is(read(three, f), read(one, f), f);
  // the comparison is not vacuous: the demo policy answers and SAM2 and CLIP ran
  assert.ok(r1.records.some(r => r.bbox !== null && r.i > 0), 'some answer parses and hits');
  assert.ok(r1.records.some(r => r.s1 !== null), 'CLIP scored some caption');
  assert.ok(new Set(r1.records.map(r => r.text)).size > 1, 'outputs differ between samples');
  w.dispose();
  assert.is(tf.memory().numTensors, base, 'weights freed');
});

test('a folder written with batch 1 resumes with batch 3: no refusal, only the missing samples run, same records', async () => {
  const { policy, reference } = tinyPolicy(7);
  const seg = new Segmenter(policy, tinySam());
  const all = () => [0, 1, 2, 3, 4].map(k => mk(k));
  const opts = { maxNewTokens: 3, worst: 0, figures: false, data: 'world:test:5' };
  const full = path.join(tmp, 'full'), part = path.join(tmp, 'part');
  const ref = await evaluate(seg, all(), 5, { ...opts, outDir: full, batchSize: 1 });
  await evaluate(seg, all().slice(0, 2), 5, { ...opts, outDir: part, batchSize: 1 });
  const provenance = readResultsFile(path.join(part, 'results.jsonl')).provenance;
  assert.not.ok(JSON.stringify(provenance).includes('batch'), 'the batch size is not provenance');
  const before = tf.memory().numTensors;
  const { calls, restore } = countCalls(seg);
  const { records } = await evaluate(seg, all(), 5, { ...opts, outDir: part, batchSize: 3 });
  restore();
  assert.is(tf.memory().numTensors, before, 'no tensor leak');
  assert.equal(calls, [3], 'the 3 missing samples in one generation, the 2 done ones skipped');
  assert.equal(records, ref.records);
  assert.equal(readResults(path.join(part, 'results.jsonl')), ref.records);
  assert.equal(readResultsFile(path.join(part, 'results.jsonl')).provenance, provenance);
  assert.is(read(part, 'metrics.json'), read(full, 'metrics.json'));
  // a duplicate id in the stream is evaluated once, as with batch 1
  const dup = path.join(tmp, 'dup');
  const d = await evaluate(seg, [mk(0), mk(1), mk(0), mk(2)], 4, { ...opts, outDir: dup, batchSize: 4 });
  assert.equal(d.records.map(r => r.id), ['test-0', 'test-1', 'test-2']);
  seg.dispose(); seg.sam.dispose(); policy.model.dispose(); reference.dispose();
});

test('a failure mid-batch loses at most that batch; a failing source still records what it gave; bad batchSize is refused', async () => {
  const { policy, reference } = tinyPolicy(8);
  const seg = new Segmenter(policy, tinySam());
  const opts = { maxNewTokens: 3, worst: 0, figures: false, batchSize: 2 };
  // the generation of the second batch fails: the first batch's 2 records stay
  const out = path.join(tmp, 'crash');
  const orig = seg.segmentBatch.bind(seg);
  let n = 0;
  seg.segmentBatch = async (items, o) => {
    if (++n === 2) throw new Error('out of memory');
    return orig(items, o);
  };
  const e = await evaluate(seg, [0, 1, 2, 3, 4].map(k => mk(k)), 5, { ...opts, outDir: out }).catch(x => (x as Error).message);
  seg.segmentBatch = orig;
  assert.is(e, 'out of memory');
  assert.equal(readResults(path.join(out, 'results.jsonl')).map((r: EvalRecord) => r.id), ['test-0', 'test-1']);
  // the source dies after 3 samples: batch [0, 1] ran, the read sample 2 is still recorded
  const src = path.join(tmp, 'source');
  function* dying() {
    for (let i = 0; i < 5; i++) {
      if (i === 3) throw new Error('disk gone');
      yield mk(i);
    }
  }
  const e2 = await evaluate(seg, dying(), 5, { ...opts, outDir: src }).catch(x => (x as Error).message);
  assert.is(e2, 'disk gone');
  assert.equal(readResults(path.join(src, 'results.jsonl')).map(r => r.id), ['test-0', 'test-1', 'test-2']);
  for (const b of [0, 1.5, -1]) {
    const m = await evaluate(seg, [mk(0)], 1, { ...opts, outDir: path.join(tmp, 'bad'), batchSize: b }).catch(x => (x as Error).message);
    assert.is(m, `evaluate: batchSize has to be a positive integer, but is ${b}`);
  }
  seg.dispose(); seg.sam.dispose(); policy.model.dispose(); reference.dispose();
});

test('npm run eval: --batch is documented in --help and must be at least 1', () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'examples/eval.ts', ...args], { encoding: 'utf8', env: { ...process.env, DPAD_QUIET: '1', DPAD_DEBUG: '' } });
  const h = run(['--help']);
  assert.is(h.status, 0, h.stderr);
  assert.match(h.stdout, /--batch <n>\s+samples generated together .*\(default: 8\)/);
  const bad = run(['--batch', '0']);
  assert.is(bad.status, 1);
  assert.match(`${bad.stdout}${bad.stderr}`, '--batch must be at least 1, got 0');
});

test.run();
