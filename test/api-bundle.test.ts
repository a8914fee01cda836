/** The one-call API: loadWeights(dir) with named layout errors, and Segmenter.segmentBatch equal to one-by-one segment. */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { worldSample } from '../src/data/world/generator.ts';
import { loadWeights } from '../src/pipeline/bundle.ts';
import { Segmenter } from '../src/pipeline/segment.ts';
import { makePolicy } from '../src/pipeline/policy.ts';
import { tinyPolicy, tinySam } from './helpers/world.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-api-'));

test('loadWeights: a missing folder is named', () => {
  const none = path.join(tmp, 'none');
  assert.throws(() => loadWeights(none), (e: Error) => e.message === `${none}: not a weights directory (expected a folder with policy/, sam2/ and optionally clip/)`);
  const x = path.join(tmp, 'x');
  fs.mkdirSync(path.join(x, 'policy'), { recursive: true });
  assert.throws(() => loadWeights(x), (e: Error) => e.message === `${x}: no sam2/ folder (expected policy/, sam2/ and optionally clip/)`);
  const y = path.join(tmp, 'y');
  fs.mkdirSync(path.join(y, 'sam2'), { recursive: true });
  assert.throws(() => loadWeights(y), (e: Error) => e.message === `${y}: no policy/ folder (expected policy/, sam2/ and optionally clip/)`);
});

test('loadWeights(weights/demo): policy, sam, scorer and a segmenter that knows its directory; dispose frees them all', () => {
  const before = tf.memory().numTensors;
  const w = loadWeights('weights/demo');
  assert.is(w.dir, 'weights/demo');
  assert.is(w.segmenter.weightsDir, 'weights/demo');
  assert.is(w.segmenter.policy, w.policy);
  assert.ok(w.scorer, 'clip/ is there');
  assert.is(w.policy.viewSize > 0, true);
  w.dispose();
  assert.is(tf.memory().numTensors, before, 'no tensor left');
});

test('segmentBatch equals one segment call per item (left-padded prompts of different lengths, images of different sizes)', async () => {
  const { policy, reference } = tinyPolicy(3);
  const seg = new Segmenter(policy, tinySam());
  const items = [0, 1, 2, 3, 4].map(k => {
    const s = worldSample('test', k, { size: k % 2 ? 48 : 64 });
    return { image: s.image, query: k === 2 ? `${s.query} on the far left of the picture` : s.query };
  });
  const one = [];
  for (const it of items) one.push(await seg.segment(it.image, it.query, { maxNewTokens: 6 }));
  const before = tf.memory().numTensors;
  const many = await seg.segmentBatch(items, { maxNewTokens: 6, batchSize: 3 });
  assert.is(tf.memory().numTensors, before, 'no tensor leak');
  assert.is(many.length, items.length);
  const lengths = new Set(items.map(it => policy.tokenizer.encode(it.query).length));
  assert.ok(lengths.size > 1, 'the prompts differ in length');
  for (let k = 0; k < items.length; k++) {
    const { mask: ma, ...a } = one[k];
    const { mask: mb, ...b } = many[k];
    assert.equal(b, a, `item ${k}`);
    assert.equal(mb ? Array.from(mb) : null, ma ? Array.from(ma) : null, `mask ${k}`);
  }
  // with a repetition penalty the batches hold prompts of one length only: still equal
  const pen = new Segmenter(makePolicy(policy.model, policy.tokenizer, { viewSize: policy.viewSize, repetitionPenalty: 1.3 }), seg.sam);
  const p1 = [];
  for (const it of items) p1.push((await pen.segment(it.image, it.query, { maxNewTokens: 6 })).text);
  assert.equal((await pen.segmentBatch(items, { maxNewTokens: 6, batchSize: 5 })).map(r => r.text), p1);
  const e = await seg.segmentBatch(items, { batchSize: 0 }).catch(x => (x as Error).message);
  assert.is(e, 'segmentBatch: batchSize has to be a positive integer, but is 0');
  const bad = await seg.segmentBatch([{ image: items[0].image } as never]).catch(x => (x as Error).message);
  assert.is(bad, 'segmentBatch: item 0 is not { image, query }');
  pen.dispose(); seg.dispose(); seg.sam.dispose(); policy.model.dispose(); reference.dispose();
});

test.run();
