/**
 * results.jsonl and metrics.json record what made them (weights fingerprint, data spec, options);
 * a rerun into a folder made otherwise refuses, naming the difference, unless fresh.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { worldSample } from '../src/data/world/generator.ts';
import { evaluate, readResults, readResultsFile, type EvalSample } from '../src/eval/evaluate.ts';
import { modelFingerprint, weightsFingerprint } from '../src/pipeline/bundle.ts';
import { Segmenter } from '../src/pipeline/segment.ts';
import { tinyPolicy, tinySam } from './helpers/world.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-prov-'));
const mk = (n: number): EvalSample => { const s = worldSample('test', n, { size: 64 }); return { id: s.id, image: s.image, query: s.query, mask: s.mask }; };
const samples = () => [mk(0), mk(1)];
const refusal = async (f: () => Promise<unknown>) => {
  try {
    await f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

const a = tinyPolicy(5);
const b = tinyPolicy(6);
const sam = tinySam();
const segA = new Segmenter(a.policy, sam, { weightsDir: 'weights/a' });
const segB = new Segmenter(b.policy, sam);

test('the fingerprint: equal for equal weights, different when one sampled element changes, independent of the path', () => {
  const cfg = a.config;
  assert.is(modelFingerprint(a.policy.model, cfg), modelFingerprint(a.reference, cfg), 'a copy of the weights');
  assert.is.not(modelFingerprint(a.policy.model, cfg), modelFingerprint(b.policy.model, cfg));
  const fa = weightsFingerprint(a.policy, sam);
  assert.match(fa.fingerprint, /^[0-9a-f]{64}$/);
  assert.is(fa.clip, null);
  const [, v] = [...a.reference.namedParameters()][0];
  v.assign(v.add(1));
  assert.is.not(modelFingerprint(a.reference, cfg), modelFingerprint(a.policy.model, cfg), 'retrained weights');
  v.assign(v.sub(1));
});

test('provenance is the first line of results.jsonl and a key of metrics.json; the same run resumes', async () => {
  const out = path.join(tmp, 'same');
  await evaluate(segA, samples(), 2, { outDir: out, maxNewTokens: 3, worst: 0, figures: false, data: 'world:test:2' });
  const first = JSON.parse(fs.readFileSync(path.join(out, 'results.jsonl'), 'utf8').split('\n')[0]);
  const fp = weightsFingerprint(a.policy, sam);
  assert.equal(first.provenance, {
    version: 1, weights: { ...fp, dir: 'weights/a' }, data: 'world:test:2',
    options: { maxNewTokens: 3, thinkTokens: 'released', variant: 'dpad', scorer: false },
  });
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).provenance, first.provenance);
  assert.is(readResults(path.join(out, 'results.jsonl')).length, 2, 'the provenance line is not a record');
  let calls = 0;
  const orig = segA.segmentBatch.bind(segA);
  segA.segmentBatch = async (items, o) => { calls += items.length; return orig(items, o); };
  try {
    await evaluate(segA, [...samples(), mk(2)], 3, { outDir: out, maxNewTokens: 3, worst: 0, figures: false, data: 'world:test:2' });
  } finally {
    segA.segmentBatch = orig;
  }
  assert.is(calls, 1, 'only the new sample runs');
  const f = readResultsFile(path.join(out, 'results.jsonl'));
  assert.is(f.records.length, 3);
  assert.equal(f.provenance, first.provenance);
  const r = f.records[0];
  assert.is(r.view, 56);
  assert.type(r.generatedTokens, 'number');
  assert.type(r.thinkTokens, 'number');
});

test('a rerun with other weights, data or options refuses and names the difference; fresh starts over', async () => {
  const out = path.join(tmp, 'other');
  const opts = { outDir: out, maxNewTokens: 3, worst: 0, figures: false, data: 'world:test:2' };
  await evaluate(segA, samples(), 2, opts);
  const fa = weightsFingerprint(a.policy, sam).fingerprint.slice(0, 12);
  const fb = weightsFingerprint(b.policy, sam).fingerprint.slice(0, 12);
  assert.is(await refusal(() => evaluate(segB, samples(), 2, opts)),
    `${out}: results.jsonl was made with weights ${fa} (weights/a), this run uses ${fb} (weights in memory) (policy differs); use --fresh to start over`);
  assert.is(await refusal(() => evaluate(segB, samples(), 2, { ...opts, weightsDir: 'runs/x/export' })),
    `${out}: results.jsonl was made with weights ${fa} (weights/a), this run uses ${fb} (runs/x/export) (policy differs); use --fresh to start over`);
  assert.is(await refusal(() => evaluate(segA, samples(), 2, { ...opts, data: { spec: 'refcocog', split: 'val' } })),
    `${out}: results.jsonl was made with data "world:test:2", this run uses {"spec":"refcocog","split":"val"}; use --fresh to start over`);
  assert.is(await refusal(() => evaluate(segA, samples(), 2, { ...opts, maxNewTokens: 4 })),
    `${out}: results.jsonl was made with maxNewTokens 3, this run uses 4; use --fresh to start over`);
  assert.is(await refusal(() => evaluate(segA, samples(), 2, { ...opts, thinkTokens: 'response' })),
    `${out}: results.jsonl was made with thinkTokens "released", this run uses "response"; use --fresh to start over`);
  assert.is(await refusal(() => evaluate(segA, samples(), 2, { ...opts, variant: 'baseline' })),
    `${out}: results.jsonl was made with variant "dpad", this run uses "baseline"; use --fresh to start over`);
  // nothing was changed by the refusals
  assert.is(readResults(path.join(out, 'results.jsonl')).length, 2);
  const { records } = await evaluate(segB, samples(), 2, { ...opts, fresh: true });
  assert.is(records.length, 2);
  assert.is(readResultsFile(path.join(out, 'results.jsonl')).provenance!.weights.fingerprint.slice(0, 12), fb);
});

test('a folder from before provenance is refused; an empty one is reused', async () => {
  const out = path.join(tmp, 'old');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results.jsonl'), '{"id":"test-0","query":"q","text":"","i":0,"u":1,"counted":true}\n{"id":"torn');
  assert.is(await refusal(() => evaluate(segA, samples(), 2, { outDir: out, maxNewTokens: 3, worst: 0, figures: false })),
    `${out}: results.jsonl has no provenance record (an older version wrote it), so the weights and data of its 1 results are unknown; use --fresh to start over`);
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  fs.writeFileSync(path.join(empty, 'results.jsonl'), '');
  const { records } = await evaluate(segA, samples(), 2, { outDir: empty, maxNewTokens: 3, worst: 0, figures: false });
  assert.is(records.length, 2);
});

test.after(() => {
  segA.dispose(); segB.dispose(); sam.dispose();
  a.policy.model.dispose(); a.reference.dispose(); b.policy.model.dispose(); b.reference.dispose();
});

test.run();
