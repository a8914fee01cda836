import './helpers/setup.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROUND } from '../src/data/world/render.ts';
import { referenceResponse, worldSample } from '../src/data/world/generator.ts';
import { computeReward } from '../src/rewards/composite.ts';
import { PolicyTokenizer } from '../src/models/qwen2_5_vl/tokenizer.ts';
import { DPAD_PROMPT } from '../src/pipeline/prompt.ts';
import { tinyPolicy, tinySam, tinyScorer, tinyTokenizerDir } from './helpers/world.ts';
import * as tf from '@tensorflow/tfjs-core';
import { evaluateOnWorld } from '../src/eval/world_policy.ts';
import { sam2BoxIoU } from '../src/eval/demo.ts';

test('world samples are deterministic and the splits differ', () => {
  const a = worldSample('train', 5);
  const b = worldSample('train', 5);
  assert.is(a.query, b.query);
  assert.equal(Array.from(a.image.data.slice(0, 300)), Array.from(b.image.data.slice(0, 300)));
  assert.is.not(worldSample('test', 5).solution, a.solution);
});

test('queries single out their target; all types and difficulties occur; the reference response scores full marks', () => {
  const types = new Set<string>();
  const diffs = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const s = worldSample('val', i);
    types.add(s.type);
    diffs.add(s.difficulty);
    const t = s.objects[s.target];
    if (s.type === 'Logic') {
      const m = /neither (\w+) nor (\w+)/.exec(s.query)!;
      const has = (o: typeof t, p: string) => o.color === p || o.size === p || o.texture === p || (p === 'round' && ROUND.has(o.shape));
      const neither = s.objects.filter(o => !has(o, m[1]) && !has(o, m[2]));
      assert.equal(neither, [t], s.query);
    }
    assert.ok(s.mask.some(v => v), 'the target has pixels');
    assert.is(s.masks.length, s.objects.length, 'one mask per object');
    assert.is(s.masks[s.target], s.mask);
    for (let p = 0; p < s.mask.length; p++) assert.ok(s.masks.reduce((a, m) => a + m[p], 0) <= 1, `${s.id}: visible masks do not overlap`);
    const [p1, p2] = s.points;
    assert.ok(s.mask[p1[1] * s.image.width + p1[0]] === 1 && s.mask[p2[1] * s.image.width + p2[0]] === 1, 'inner points lie in the mask');
    const r = computeReward(referenceResponse(s), s.solution, { s1: 0.3, s2: 0.2 });
    assert.is(r.total, 6, `${s.id}: ${JSON.stringify(r.components)}`);
  }
  assert.equal([...types].sort(), ['Attribute', 'Logic', 'Relation']);
  assert.equal([...diffs].sort(), ['Easy', 'Hard', 'Medium']);
});

test('the world tokenizer loads through @huggingface/tokenizers, keeps special tokens whole and round-trips', () => {
  const tok = PolicyTokenizer.load(tinyTokenizerDir());
  const text = `<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>${DPAD_PROMPT}<|im_end|>`;
  const ids = tok.encode(text);
  assert.ok(ids.includes(tok.tokenId('<|image_pad|>')));
  assert.is(tok.decode(ids, false), text);
  const s = referenceResponse(worldSample('train', 1));
  assert.is(tok.decode(tok.encode(s)), s);
  const n = tok.encode(DPAD_PROMPT).length;
  assert.ok(n < DPAD_PROMPT.length / 1.8, `the learned merges compress the prompt (${n} tokens for ${DPAD_PROMPT.length} characters)`);
});

test('held-out world measures: reward components, gIoU and the SAM2 box probe are in range and leak nothing', async () => {
  const { policy, reference } = tinyPolicy(3);
  const sam = tinySam();
  const scorer = tinyScorer();
  const r = await evaluateOnWorld(policy, sam, scorer, { n: 2, maxNewTokens: 6, quiet: true });
  assert.is(r.n, 2);
  assert.equal(Object.keys(r.components).sort(), ['box_l1', 'discriminative', 'iou', 'points_l1', 'segmentation_format', 'thinking_format']);
  const sum = Object.values(r.components).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - r.reward) < 1e-9, 'the total is the sum of the component means');
  assert.ok(r.gIoU >= 0 && r.gIoU <= 1 && r.cIoU >= 0 && r.cIoU <= 1);
  const before = tf.memory().numTensors;
  await evaluateOnWorld(policy, sam, scorer, { n: 2, maxNewTokens: 6, quiet: true });
  const probe = sam2BoxIoU(sam, 'val', 2);
  assert.ok(probe.box >= 0 && probe.box <= 1 && probe.boxPoints >= 0 && probe.boxPoints <= 1);
  assert.is(tf.memory().numTensors, before, 'flat tensor count');
  policy.model.dispose(); reference.dispose(); sam.dispose(); scorer.dispose();
});

test.run();
