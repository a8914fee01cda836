import './helpers/setup.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeReward, discriminativeReward } from '../src/rewards/index.ts';
import { parseGroundTruth, parseResponse } from '../src/prompt/index.ts';
import { CLIP_MAX_IDS, pilCropSize, releasedClipScores } from '../src/rewards/discriminative.ts';
import { extractPrediction, extractThink, failureThink, pyErrorText } from '../src/prompt/extract.ts';
import { PyError, pyJsonLoads, pyRepr } from '../src/util/pycompat.ts';

const GT = '<box>(231,260),(582,618)</box><points>(376,355),(429,541)</points>';
const resp = (caption: string | null) =>
  `<think>t</think><answer>{"bbox": [231, 260, 582, 618], "points_1": [376, 355], "points_2": [429, 541]}</answer>${caption === null ? '' : `<caption>${caption}</caption>`}`;

function pyErr(f: () => unknown): PyError {
  try {
    f();
  } catch (e) {
    if (e instanceof PyError) return e;
    throw e;
  }
  throw new Error('did not raise');
}

test('binary discriminative reward is S2 > 0 and S1/S2 > 1; scaled and difference as released', () => {
  assert.is(discriminativeReward({ s1: 0.25, s2: 0.249999999 }, 'binary').value, 1);
  assert.is(discriminativeReward({ s1: 0.25, s2: 0.25 }, 'binary').value, 0);
  assert.is(discriminativeReward({ s1: 0.1, s2: -0.2 }, 'binary').value, 0); // S1/S2 < 0 but S1 > S2
  assert.is(discriminativeReward({ s1: -0.1, s2: -0.2 }, 'binary').value, 0); // S1/S2 = 0.5... and S2 <= 0
  assert.is(discriminativeReward({ s1: 0.3, s2: 0.2 }, 'scaled').value, 0.3 * (0.3 - 0.2));
  assert.is(discriminativeReward({ s1: 0.3, s2: 0.2 }, 'difference').value, 0.3 - 0.2);
  assert.is(discriminativeReward({ s1: 0.2, s2: 0.3 }, 'scaled').value, 0);
});

test('released CLIP scores: no caption or over 77 ids -> 0, 0; no GT box -> S1 = 0, S2 scored', () => {
  const raw = { s1: 0.3125, s2: 0.25 };
  const gt = parseGroundTruth(GT);
  assert.equal(releasedClipScores(parseResponse(resp('a dog')), gt, 5, raw), raw);
  assert.equal(releasedClipScores(parseResponse(resp('a dog')), gt, CLIP_MAX_IDS, raw), raw); // 75 BPE + BOS + EOS
  assert.equal(releasedClipScores(parseResponse(resp('a dog')), gt, CLIP_MAX_IDS + 1, raw), { s1: 0, s2: 0 });
  assert.equal(releasedClipScores(parseResponse(resp(null)), gt, 5, raw), { s1: 0, s2: 0 });
  assert.equal(releasedClipScores(parseResponse(resp('')), gt, 2, raw), raw); // an empty caption is scored
  assert.equal(releasedClipScores(parseResponse(resp('a dog')), parseGroundTruth('nothing'), 5, raw), { s1: 0, s2: 0.25 });
  assert.equal(pilCropSize([231, 260, 582, 618]), [351, 358]);
  assert.equal(pilCropSize([10, 10, 10, 12]), [0, 2]);
  assert.is(pilCropSize([20, 10, 10, 12]), null); // PIL: right < left raises
  assert.equal(releasedClipScores(parseResponse(resp('a dog')), parseGroundTruth('<box>(20,10),(10,12)</box>'), 5, raw), { s1: 0, s2: 0.25 });
  // the composite totals of the three variants on one response
  const p = parseResponse(resp('a dog'));
  const s = releasedClipScores(p, gt, 5, raw);
  assert.is(computeReward(p, gt, s, { discriminative: 'scaled' }).total, 5 + 0.3125 * 0.0625);
  assert.is(computeReward(p, gt, s, { discriminative: 'binary' }).total, 6);
  assert.is(computeReward(p, gt, null, { variant: 'baseline' }).total, 4);
});

test("JSONDecodeError texts are CPython's: line, column and char", () => {
  assert.is(pyErr(() => pyJsonLoads('{"a": 1,}')).detail, 'Expecting property name enclosed in double quotes: line 1 column 9 (char 8)');
  assert.is(pyErr(() => pyJsonLoads("{'bbox': 1}")).detail, 'Expecting property name enclosed in double quotes: line 1 column 2 (char 1)');
  assert.is(pyErr(() => pyJsonLoads('{\n  "a": ,}')).detail, 'Expecting value: line 2 column 8 (char 9)');
  assert.is(pyErr(() => pyJsonLoads('{"a": "x}')).detail, 'Unterminated string starting at: line 1 column 7 (char 6)');
  assert.is(pyErr(() => pyJsonLoads('{"a" 1}')).detail, "Expecting ':' delimiter: line 1 column 6 (char 5)");
  assert.is(pyErr(() => pyJsonLoads('{"a": "\\q"}')).detail, 'Invalid \\escape: line 1 column 8 (char 7)');
  assert.is(pyErr(() => pyJsonLoads('{"a": 1} x')).detail, 'Extra data: line 1 column 10 (char 9)');
  assert.is(pyRepr("it's"), '"it\'s"');
  assert.is(pyRepr('a\nb'), "'a\\nb'");
});

test('evaluation parser: first key containing bbox / points (any case), round-half-even of int(v) * factor, no clamp', () => {
  // 259 * 1260/840 = 388.5 -> 388 (half to even); 549 * 1.5 = 823.5 -> 824
  const a = extractPrediction('<think>why</think><answer>{"bbox": [259, 55, 549, 207], "points_1": [270, 76], "points_2": [536, 200]}</answer>', 1260 / 840, 630 / 840);
  assert.equal(a.bbox, [388, 41, 824, 155]);
  assert.equal(a.points, [[405, 57], [804, 150]]);
  assert.is(a.think, 'why');
  // fuzzy keys, case-insensitive; floats truncated by int() first; numeric strings accepted
  const b = extractPrediction('{"Pred_BBox_2d": [10.9, "20", 300.99, 400.2], "Points_A": [50.5, 60.7], "pointsB": [200.2, 300.9], "points_3": [1, 1]}', 1.5, 0.75);
  assert.equal(b.bbox, [15, 15, 450, 300]);
  assert.equal(b.points, [[75, 45], [300, 225]]);
  assert.is(b.think, '');
  // outside the image and negative: kept as they are
  const c = extractPrediction('{"bbox": [-20, -5, 900, 870], "points_1": [-3, 1], "points_2": [899, 869]}', 1, 1);
  assert.equal(c.bbox, [-20, -5, 900, 870]);
  assert.equal(c.points, [[-3, 1], [899, 869]]);
  // a '<' inside the think text: the think pattern does not match
  assert.is(extractThink('<think>x<y</think>'), '');
});

test('evaluation parser raises with the Python error the evaluation records as think', () => {
  const unbound = (v: string) => `cannot access local variable '${v}' where it is not associated with a value`;
  assert.is(pyErr(() => extractPrediction('<answer>none</answer>', 1, 1)).detail, unbound('content_bbox'));
  assert.is(pyErr(() => extractPrediction('{"bbox": [1, 2, 3], "points_1": [1, 1], "points_2": [2, 2]}', 1, 1)).detail, unbound('content_bbox'));
  assert.is(pyErr(() => extractPrediction('{"bbox": [1, 2, 30, 40], "points_1": [1, 1]}', 1, 1)).detail, unbound('points'));
  assert.is(pyErr(() => extractPrediction('{"bbox": 5, "points_1": [1, 1], "points_2": [2, 2]}', 1, 1)).detail, "object of type 'int' has no len()");
  assert.is(pyErr(() => extractPrediction('{"bbox": [1, "x", 3, 4], "points_1": [1, 1], "points_2": [2, 2]}', 1, 1)).detail, "invalid literal for int() with base 10: 'x'");
  assert.is(pyErr(() => extractPrediction('{"bbox": [1, 2, 3, 4], "points_1": [1], "points_2": [2, 2]}', 1, 1)).detail, 'list index out of range');
  assert.is(pyErr(() => extractPrediction('{"bbox": [null, 2, 3, 4], "points_1": [1, 1], "points_2": [2, 2]}', 1, 1)).detail, "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'");
  const e = pyErr(() => extractPrediction("{'bbox': [1, 2, 3, 4]}", 1, 1));
  assert.is(failureThink(pyErrorText(e)), '[Error]... Expecting property name enclosed in double quotes: line 1 column 2 (char 1)');
});

test.run();
