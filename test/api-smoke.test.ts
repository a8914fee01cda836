/**
 * The public entry point end to end, as a consumer sees it: only src/index.ts is imported. The
 * demo weights load in one call, one world image is segmented (the view it saw comes back with
 * the result), its reward is scored through the registry and its IoU measured.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as api from '../src/index.ts';

process.env.DPAD_QUIET ??= '1';
await api.initBackend({ quiet: true });

test('loadWeights + Segmenter.segment + scoreGroup + maskIntersectionUnion through src/index.ts', async () => {
  const w = api.loadWeights(api.DEFAULT_WEIGHTS);
  try {
    const s = api.worldSample('test', 0);
    const r = await w.segmenter.segment(s.image, s.query, { maxNewTokens: 160 });
    assert.is(r.query, s.query);
    assert.is(r.view, w.policy.viewSize);
    assert.equal([r.viewImage!.width, r.viewImage!.height], [r.view, r.view]);
    assert.equal([r.width, r.height], [s.image.width, s.image.height]);
    assert.ok(r.generatedTokens > 0 && typeof r.text === 'string');
    if (r.mask) {
      assert.is(r.mask.length, s.image.width * s.image.height);
      assert.ok(api.maskIntersectionUnion(r.mask, s.mask).u > 0);
    } else assert.ok(r.reason);
    const [rw] = await api.scoreGroup([r.text], { image: r.viewImage!, solution: api.worldSample('test', 0, { frame: r.view }).solution }, { scorer: w.scorer });
    assert.equal(Object.keys(rw.components), [...api.REWARD_COMPONENTS]);
    assert.ok(Number.isFinite(rw.total));
  } finally {
    w.dispose();
  }
});

test('the opener, the config and the trainer pieces are on the public API', async () => {
  const d = await api.openDataset('world:train:2', { frame: 112 }).train();
  assert.is(d.size, 2);
  assert.is(api.trainConfig({}).lr, api.DEFAULT_ADAMW.lr);
  for (const name of ['GrpoTrainer', 'referenceCopy', 'evaluate', 'evaluateOnWorld', 'runCli', 'UsageError', 'writeJsonAtomic', 'overlayPng', 'maskPng', 'tokenBands', 'parseResponse', 'answerGeometry', 'toView', 'boxToView', 'optimizerStep']) {
    assert.type((api as Record<string, unknown>)[name], 'function', name);
  }
});

test.run();
