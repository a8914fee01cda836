import './helpers/setup.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROUND } from '../src/data/world/render.ts';
import { referenceResponse, worldSample } from '../src/data/world/generator.ts';
import { computeReward } from '../src/rewards/registry.ts';
import { PolicyTokenizer } from '../src/models/qwen2_5_vl/tokenizer.ts';
import { DPAD_PROMPT } from '../src/prompt/template.ts';
import { tinyPolicy, tinySam, tinyScorer, tinyTokenizerDir } from './helpers/world.ts';
import * as tf from '@tensorflow/tfjs-core';
import { evaluateOnWorld } from '../src/eval/world_policy.ts';
import { policyImageUse, policyLocateBox, policyTeacherForcedBox, sam2BoxIoU } from '../src/demo/probes.ts';
import { CELL_OUTPUTS, cellTargets } from '../src/demo/cells.ts';
import { pretrainVision } from '../src/demo/pretrain_vision.ts';
import { alignPolicy } from '../src/demo/pretrain_align.ts';
import { describeScene } from '../src/demo/describe.ts';
import { locateItem } from '../src/demo/locate.ts';
import { initNumberEmbeddings, NUMBER_CODE_FREQUENCIES, numberCode } from '../src/demo/numbers.ts';
import { captionOf, describe, minimalDescription } from '../src/data/world/generator.ts';
import { maskBox } from '../src/data/world/render.ts';
import { packBatch, referenceExample, weightedNll } from '../src/demo/sft.ts';

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

test('Medium and Hard scenes carry a near twin of the target: a distractor that differs in exactly one attribute', () => {
  const attrs = ['size', 'texture', 'color', 'shape'] as const;
  const differing: Record<string, number> = {};
  let scenes = 0;
  for (let i = 0; i < 80; i++) {
    const s = worldSample('val', i);
    if (s.difficulty === 'Easy') continue;
    scenes++;
    const t = s.objects[s.target];
    const twins = s.objects.filter((o, k) => k !== s.target && attrs.filter(a => o[a] !== t[a]).length === 1);
    assert.ok(twins.length >= 1, `${s.id}: no distractor differs from the target in one attribute`);
    const a = attrs.find(x => twins[0][x] !== t[x])!;
    differing[a] = (differing[a] ?? 0) + 1;
  }
  assert.ok(scenes > 30, `${scenes} Medium and Hard scenes`);
  assert.equal(Object.keys(differing).sort(), [...attrs].sort(), `every attribute is the differing one somewhere: ${JSON.stringify(differing)}`);
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

test('cell targets: each centre marks its cell with its attributes and its box and points in cell units, the larger object wins a shared cell, every cell knows its place', () => {
  const o = (cx: number, cy: number, r: number, color: 'red' | 'blue') => ({
    shape: 'ring' as const, color, size: 'small' as const, texture: 'dotted' as const, cx, cy, r,
    box: [cx - r, cy - r, cx + r, cy + r] as const, points: [[cx, cy], [cx + 1, cy]] as const,
  });
  // 100 x 100 px as 4 x 4 cells of 25 px: (10, 60) is column 0, row 2; (30, 30) and (40, 45) share column 1, row 1
  const t = cellTargets([o(10, 60, 5, 'red'), o(30, 30, 4, 'red'), o(40, 45, 9, 'blue')], 100, 100, 4, 4);
  assert.equal(Array.from(t.objectness).map((v, k) => (v ? k : -1)).filter(k => k >= 0), [5, 8]);
  assert.is(t.color[8], 0, 'red is COLORS[0]');
  assert.is(t.color[5], 2, 'the larger (blue) object owns the shared cell');
  assert.is(t.color[0], -1);
  // cell 8 holds the red object: box 5..15 x 55..65 -> 0.2, 2.2, 0.6, 2.6 cells; points (10, 60), (11, 60)
  assert.equal(Array.from(t.geometry.slice(8 * 8, 9 * 8)).map(v => +v.toFixed(4)), [0.2, 2.2, 0.6, 2.6, 0.4, 2.4, 0.44, 2.4]);
  // cell 5 holds the blue object, box 31..49 x 36..54
  assert.equal(Array.from(t.geometry.slice(5 * 8, 5 * 8 + 4)).map(v => +v.toFixed(4)), [1.24, 1.44, 1.96, 2.16]);
  assert.ok(t.geometry.slice(0, 8).every(v => v === 0), 'no centre, no geometry');
  assert.equal(Array.from(t.position.slice(15 * 2, 16 * 2)), [3.5, 3.5]);
  assert.equal(Array.from(t.position.slice(4 * 2, 5 * 2)), [0.5, 1.5]);
  // a centre on the far edge stays in the last cell
  assert.equal(Array.from(cellTargets([o(100, 100, 3, 'red')], 100, 100, 4, 4).objectness).indexOf(1), 15);
  assert.is(CELL_OUTPUTS, 1 + 6 + 5 + 3 + 2 + 8 + 2 + 8 * 2 * NUMBER_CODE_FREQUENCIES);
  // the codes: cell 8's x1 is 5 px of a 100-px image, 5.6 px in a 112-px view
  const t112 = cellTargets([o(10, 60, 5, 'red')], 100, 100, 4, 4, 112);
  const F2 = 2 * NUMBER_CODE_FREQUENCIES;
  assert.equal(Array.from(t112.code.slice(8 * 8 * F2, 8 * 8 * F2 + F2)), Array.from(numberCode(5.6, 112)));
  assert.ok(t112.code.slice(0, 8 * F2).every(v => v === 0), 'no centre, no code');
});

test('world backgrounds carry the fixed place ramps: red rises to the right and green downwards in every scene', () => {
  for (let i = 0; i < 6; i++) {
    const { image } = worldSample('val', i);
    const { width: W, height: H, data } = image;
    // the mean over a 12-px strip along each edge (objects included: the ramps are 48 levels)
    const mean = (x0: number, y0: number, w: number, h: number, c: number) => {
      let s = 0;
      for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) s += data[(y * W + x) * 3 + c];
      return s / (w * h);
    };
    assert.ok(mean(W - 12, 0, 12, H, 0) - mean(0, 0, 12, H, 0) > 15, `val ${i}: red rises left to right`);
    assert.ok(mean(0, H - 12, W, 12, 1) - mean(0, 0, W, 12, 1) > 15, `val ${i}: green rises top to bottom`);
  }
});

test('vision pretraining changes only the vision tower and leaks nothing; the image-use probe compares own and other images', () => {
  const { policy, reference } = tinyPolicy(4);
  const snapshot = () => new Map([...policy.model.namedParameters()].map(([n, v]) => [n, v.dataSync().slice()]));
  const a = snapshot();
  const before = tf.memory().numTensors;
  const m = pretrainVision(policy, 2, 1e-2, { batch: 2, val: 2 });
  assert.is(tf.memory().numTensors, before, 'flat tensor count after vision pretraining');
  const b = snapshot();
  const changed = [...a.keys()].filter(n => a.get(n)!.some((x, i) => x !== b.get(n)![i]));
  assert.ok(changed.length > 0 && changed.every(n => n.startsWith('visual.')), `changed: ${changed.slice(0, 4).join(', ')}`);
  for (const k of ['visionObjectnessAcc', 'visionColorAcc', 'visionShapeAcc']) assert.ok(m[k] >= 0 && m[k] <= 1, k);
  const u = policyImageUse(policy, 'val', 2);
  assert.ok(Number.isFinite(u.answerNll) && u.answerNll > 0);
  assert.ok(Math.abs(u.gap - (u.otherImageNll - u.answerNll)) < 1e-9);
  assert.ok(u.gap !== 0, 'a random policy still reacts to its image');
  assert.is(tf.memory().numTensors, before, 'flat tensor count after the probe');
  policy.model.dispose(); reference.dispose();
});

test('scene descriptions list every object once, in reading order, with boxes in the view', () => {
  for (let i = 0; i < 20; i++) {
    const s = worldSample('train', i, { frame: 112 });
    const d = describeScene(s, 112);
    assert.ok(d.startsWith(`There are ${s.objects.length} objects. `), d);
    const items = [...d.matchAll(/It is (a [a-z ]+?) in the (top|middle|bottom) (left|center|right) at \[(\d+), (\d+), (\d+), (\d+)\]\./g)];
    assert.is(items.length, s.objects.length, d);
    const rows = items.map(m => ['top', 'middle', 'bottom'].indexOf(m[2]));
    assert.equal(rows, [...rows].sort((a, b) => a - b), 'rows in reading order');
    for (const m of items) {
      const [x1, y1, x2, y2] = m.slice(4, 8).map(Number);
      assert.ok(x1 <= x2 && y1 <= y2 && x2 <= 112 && y2 <= 112, m[0]);
    }
  }
  // the target's entry carries the reference answer's box
  const s = worldSample('val', 3, { frame: 112 });
  assert.ok(describeScene(s, 112).includes(`at [${JSON.parse(/<answer>(.*)<\/answer>/.exec(referenceResponse(s, 112))![1]).bbox.join(', ')}]`));
});

test('alignment trains the decoder only, refuses a trainable vision tower, and leaks nothing', () => {
  const { policy, reference } = tinyPolicy(4);
  assert.throws(() => alignPolicy(policy, { describeSteps: 1, mixedSteps: 0, lr: 1e-2 }), /freeze the vision tower/);
  policy.model.setTrainable(false, n => n.startsWith('visual.'));
  const snapshot = () => new Map([...policy.model.namedParameters()].map(([n, v]) => [n, v.dataSync().slice()]));
  const a = snapshot();
  const before = tf.memory().numTensors;
  // locate, describe, and a mixed cycle of reference, description and locate batches
  const r = alignPolicy(policy, { locateSteps: 1, describeSteps: 1, mixedSteps: 3, lr: 1e-2 });
  assert.is(tf.memory().numTensors, before, 'flat tensor count after alignment');
  assert.ok([r.locateLoss, r.describeLoss, r.mixedLoss].every(x => Number.isFinite(x) && x > 0), JSON.stringify(r));
  const b = snapshot();
  const changed = [...a.keys()].filter(n => a.get(n)!.some((x, i) => x !== b.get(n)![i]));
  assert.ok(changed.length > 0 && changed.every(n => !n.startsWith('visual.')), `changed: ${changed.slice(0, 4).join(', ')}`);
  policy.model.dispose(); reference.dispose();
});

test('locate items: the box of the object asked about, in the view, by the sample\'s query, its singling-out description or its caption', () => {
  const s = worldSample('val', 5, { frame: 112 });
  const W = s.image.width;
  const n = s.objects.length;
  for (let k = 0; k < 6 * n; k++) {
    const item = locateItem(s, k, 112);
    const i = k % 3 === 0 ? s.target : Math.floor(k / 3) % n;
    if (!item) { assert.ok(k % 3 !== 0 && minimalDescription(s.objects, i) === null, `item ${k}`); continue; }
    const box = maskBox(s.masks[i], W, W).map(x => Math.round((x * 112) / W));
    assert.equal(item.box, box);
    assert.is(item.answer, `[${box.join(', ')}]`);
    const what = k % 3 === 0 ? s.query : k % 3 === 1 ? describe(s.objects[i], minimalDescription(s.objects, i)!) : captionOf(s.objects[i]);
    assert.is(item.query, `Where is ${what}?`);
  }
  // k = 0: the target by the sample's own query, whatever its type; k = 2: object 0 (the target) by its caption
  assert.is(locateItem(s, 0, 112)!.query, `Where is ${s.query}?`);
  assert.is(locateItem(s, 2, 112)!.query, `Where is ${captionOf(s.objects[0])}?`);
  // a relation query is asked as it is, not replaced by a description of the target
  const r = Array.from({ length: 40 }, (_, j) => worldSample('val', j, { frame: 112 })).find(x => x.type === 'Relation');
  assert.ok(r, 'a val relation sample');
  assert.is(locateItem(r!, 0, 112)!.query, `Where is ${r!.query}?`);
});

test('number codes are ordinal, and the number tokens start with them', () => {
  const dot = (x: Float32Array, y: Float32Array) => x.reduce((a, v, i) => a + v * y[i], 0);
  const c = (v: number) => numberCode(v, 112);
  assert.ok(Math.abs(dot(c(40), c(40)) - NUMBER_CODE_FREQUENCIES) < 1e-4, 'each cos/sin pair has norm 1');
  // the code's self-similarity peaks at the value: 41 is nearer 40 than 44 is, and 44 nearer than 90
  assert.ok(dot(c(40), c(41)) > dot(c(40), c(44)) && dot(c(40), c(44)) > dot(c(40), c(90)), [41, 44, 90].map(v => dot(c(40), c(v)).toFixed(3)).join(' '));
  const { policy, reference } = tinyPolicy(4);
  const set = initNumberEmbeddings(policy.model, policy.tokenizer, 112);
  const e = [...policy.model.namedParameters()].find(([n]) => n === 'model.embed_tokens.weight')![1].arraySync() as number[][];
  const id = policy.tokenizer.encode('7');
  assert.is(id.length, 1);
  const row = e[id[0]].slice(0, 2 * NUMBER_CODE_FREQUENCIES);
  const scale = row[0] / numberCode(7, 112)[0];
  assert.ok(row.every((v, d) => Math.abs(v - scale * numberCode(7, 112)[d]) < 1e-5), 'the row holds the scaled code of 7');
  assert.ok(set >= 10, `${set} number rows set (the tiny tokenizer has at least the digits)`);
  policy.model.dispose(); reference.dispose();
});

test('teacher-forced probes: box and locate rates in [0, 1] over the items they saw, and no tensor left behind', () => {
  const { policy, reference } = tinyPolicy(4);
  const before = tf.memory().numTensors;
  const tfb = policyTeacherForcedBox(policy, 'val', 3);
  const loc = policyLocateBox(policy, 'val', 17);
  assert.is(tf.memory().numTensors, before, 'flat tensor count after both probes');
  assert.is(tfb.n, 3);
  for (const x of [tfb.iouAbove05, tfb.meanIoU, tfb.captionAcc, loc.iouAbove05, loc.meanIoU]) assert.ok(x >= 0 && x <= 1, JSON.stringify({ tfb, loc }));
  // locate items exist for the val samples 0..16 except identical twins: two batches (16 + 1), each item counted once
  const expected = Array.from({ length: 17 }, (_, k) => locateItem(worldSample('val', k, { frame: policy.viewSize }), k, policy.viewSize)).filter(Boolean).length;
  assert.is(loc.n, expected);
  policy.model.dispose(); reference.dispose();
});

test('packBatch left-pads prompts, right-pads responses, and lays the weights out per row', () => {
  const p = packBatch([
    { ids: [1, 2, 3], resp: [7, 8], weights: Float32Array.from([1, 5]) },
    { ids: [4], resp: [9, 10, 11], weights: Float32Array.from([2, 2, 3]) },
  ], 0);
  assert.equal([p.batch, p.promptLength, p.responseLength], [2, 3, 3]);
  assert.equal(Array.from(p.ids), [1, 2, 3, 7, 8, 0, /* row 2 */ 0, 0, 4, 9, 10, 11]);
  assert.equal(Array.from(p.attentionMask), [1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]);
  assert.equal(Array.from(p.weights), [1, 5, 0, 2, 2, 3]);
  assert.throws(() => packBatch([{ ids: [1], resp: [2, 3], weights: new Float32Array(1) }], 0), (e: Error) => e.message === 'packBatch: example 0 has 1 weights for 2 response tokens');
  assert.throws(() => packBatch([], 0), (e: Error) => e.message === 'packBatch: no examples');
});

test('reference examples weight the answer and (optionally) the final think sentence; a padded batch is the weighted mean of its rows', () => {
  const { policy, reference } = tinyPolicy(5);
  const s = worldSample('train', 2, { frame: policy.viewSize });
  const plain = referenceExample(policy, s, 4);
  const grounded = referenceExample(policy, s, 4, 7);
  const [a, z] = [plain.weights.indexOf(4), plain.weights.lastIndexOf(4) + 1];
  assert.ok(a > 0 && z > a && plain.weights.slice(a, z).every(w => w === 4), 'the answer span is weighted');
  assert.equal(new Set(plain.weights), new Set([1, 4]), 'no ground weight unless asked');
  const g = grounded.weights.indexOf(7);
  assert.ok(g > 0 && grounded.weights.lastIndexOf(7) < a, 'the ground span lies before the answer');
  assert.equal(Array.from(grounded.weights.slice(a, z)), Array.from(plain.weights.slice(a, z)));
  tf.dispose([plain.pixels, grounded.pixels]);
  const before = tf.memory().numTensors;
  const rows = [worldSample('train', 3, { frame: policy.viewSize }), worldSample('train', 4, { frame: policy.viewSize })];
  const one = rows.map(r => {
    const e = referenceExample(policy, r, 3, 2);
    const l = weightedNll(policy, [e]);
    const v = l.dataSync()[0];
    l.dispose();
    return { v, w: e.weights.reduce((x, y) => x + y, 0) };
  });
  const both = weightedNll(policy, rows.map(r => referenceExample(policy, r, 3, 2)));
  const want = (one[0].v * one[0].w + one[1].v * one[1].w) / (one[0].w + one[1].w);
  assert.ok(Math.abs(both.dataSync()[0] - want) < 1e-4, `batch ${both.dataSync()[0]} vs rows ${want}`);
  both.dispose();
  assert.is(tf.memory().numTensors, before, 'the examples\' pixels are consumed, nothing leaks');
  policy.model.dispose(); reference.dispose();
});

test.run();
