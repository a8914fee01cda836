import './helpers/setup.ts';
import seedrandom from 'seedrandom';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  boxL1Reward, computeReward, discriminativeReward, iouReward, iouValue,
  pointsL1Reward, segmentationFormatReward, thinkingFormatReward,
} from '../src/rewards/index.ts';
import { parseGroundTruth, parseResponse } from '../src/prompt/index.ts';
import { pyInt, pyJsonLoads, pyStrip } from '../src/util/pycompat.ts';
import { captionScores, type CaptionScorer } from '../src/rewards/discriminative.ts';

const GT = '<box>(12,98),(205,214)</box><points>(30,110),(35,180)</points>';
const answer = (json: string, caption = 'a red apple') => `<think>t</think><answer>${json}</answer><caption>${caption}</caption>`;

test('python json.loads semantics: NaN/Infinity accepted, trailing commas and bad escapes refused', () => {
  const v = pyJsonLoads('{"a": NaN, "b": [Infinity, -Infinity, 1e400], "c": "\\u00e9"}') as Map<string, unknown>;
  assert.ok(Number.isNaN(v.get('a') as number));
  assert.equal(v.get('b'), [Infinity, -Infinity, Infinity]);
  assert.is(v.get('c'), 'é');
  for (const bad of ['{"a": 1,}', "{'a': 1}", '{"a": 01}', '{"a": "\\x"}', '{"a": "\n"}', '{"a": 1} x', '{"a": .5}']) {
    assert.throws(() => pyJsonLoads(bad), /JSONDecodeError/, bad);
  }
  const dup = pyJsonLoads('{"k": 1, "k": 2, "__proto__": 3}') as Map<string, unknown>;
  assert.is(dup.get('k'), 2);
  assert.is(dup.get('__proto__'), 3);
});

test('python int() and strip() semantics', () => {
  assert.is(pyInt(30.7, 'x'), 30);
  assert.is(pyInt(-0.5, 'x'), 0);
  assert.is(pyInt(true, 'x'), 1);
  assert.is(pyInt(' 1_000 ', 'x'), 1000);
  assert.throws(() => pyInt('1.5', 'x'), /ValueError/);
  assert.throws(() => pyInt(NaN, 'x'), /ValueError/);
  assert.throws(() => pyInt(Infinity, 'x'), /OverflowError/);
  assert.throws(() => pyInt(null, 'x'), /TypeError/);
  assert.is(pyStrip('\x1c\u3000 cap \x85'), 'cap');
});

test('format rewards: order, separators and the baseline variant', () => {
  const ok = answer('{"bbox": [1,2,3,4], "points_1": [1,2], "points_2": [2,3]}');
  assert.is(thinkingFormatReward(parseResponse(ok)).value, 1);
  assert.is(thinkingFormatReward(parseResponse(ok), { caption: false }).value, 0);
  const noCap = '<think>t</think>\n<answer>{}</answer>';
  assert.is(thinkingFormatReward(parseResponse(noCap), { caption: false }).value, 1);
  // python's \s includes \x1c..\x1f; JS's does not
  assert.is(thinkingFormatReward(parseResponse('<think>a</think>\x1d<answer>b</answer><caption>c</caption>')).value, 1);
  assert.is(thinkingFormatReward(parseResponse('<think>a</think>\ufeff<answer>b</answer><caption>c</caption>')).value, 0);
  const r = thinkingFormatReward(parseResponse('nothing'));
  assert.is(r.value, 0);
  assert.match(r.reason!, /not <think>/);
});

test('geometric rewards follow the reference: floats kept in the box, points cast with int()', () => {
  const p = parseResponse(answer('{"bbox": [10.6,100.2,200.9,210.1], "points_1": [30.7,110.2], "points_2": [35,180]}'));
  const gt = parseGroundTruth(GT);
  assert.ok(Math.abs(iouValue(p, gt).value - 0.9215276070022396) < 1e-12);
  assert.is(iouReward(p, gt).value, 1);
  assert.is(boxL1Reward(p, gt).value, 1);
  assert.is(pointsL1Reward(p, gt).value, 1);
  // a point string indexes into characters, as in Python: "55" -> (5, 5), outside the box
  const s = parseResponse(answer('{"bbox": [0,0,10,10], "points_1": "55", "points_2": [1,1]}'));
  assert.is(pointsL1Reward(s, parseGroundTruth('<box>(0,0),(10,10)</box><points>(5,5),(1,1)</points>')).value, 1);
  const strBox = parseResponse(answer('{"bbox": ["10","100","200","210"], "points_1": [30,110], "points_2": [35,180]}'));
  assert.is(segmentationFormatReward(strBox).value, 1);
  const iv = iouValue(strBox, gt);
  assert.is(iv.value, 0);
  assert.match(iv.reason!, /TypeError/);
});

test('zero-area union is the ZeroDivisionError of the reference, not NaN', () => {
  const p = parseResponse(answer('{"bbox": [0,0,-1,-1], "points_1": [0,0], "points_2": [0,0]}'));
  const v = iouValue(p, parseGroundTruth('<box>(0,0),(-1,-1)</box>'.replace(/-1/g, '0')));
  assert.ok(Number.isFinite(v.value));
});

test('discriminative rewards: binary, difference and scaled', () => {
  assert.is(discriminativeReward({ s1: 0.3, s2: 0.2 }).value, 1);
  assert.is(discriminativeReward({ s1: 0.2, s2: 0.3 }).value, 0);
  assert.ok(Math.abs(discriminativeReward({ s1: 0.3, s2: 0.2 }, 'difference').value - 0.1) < 1e-12);
  assert.ok(Math.abs(discriminativeReward({ s1: 0.3, s2: 0.2 }, 'scaled').value - 0.03) < 1e-12);
  assert.is(discriminativeReward(null).value, 0);
  // binary is `S2 > 0 and S1/S2 > 1`: S2 <= 0 never scores, whatever S1
  assert.is(discriminativeReward({ s1: 0.3, s2: 0 }).value, 0);
  assert.is(discriminativeReward({ s1: 0.3, s2: -0.1 }).value, 0);
  assert.match(discriminativeReward({ s1: 0.3, s2: 0 }).reason!, /S2 0 <= 0/);
  assert.is(discriminativeReward({ s1: NaN, s2: 0.1 }).value, 0);
});

test('composite: DPAD sums six components, the baseline five; weights apply', () => {
  const text = '<think>x</think><answer>{"bbox": [12,98,205,214], "points_1": [30,110], "points_2": [35,180]}</answer><caption>cap</caption>';
  const d = computeReward(text, GT, { s1: 0.3, s2: 0.2 });
  assert.is(d.total, 6);
  const b = computeReward(text, GT, null, { variant: 'baseline' });
  assert.is(b.total, 4); // the caption breaks the baseline format
  assert.is(b.components.discriminative, undefined);
  const w = computeReward(text, GT, { s1: 0.1, s2: 0.2 }, { weights: { iou: 2 } as never });
  assert.is(w.total, 6);
  assert.is(w.components.discriminative!.value, 0);
  const noCaption = computeReward('<think>x</think><answer>{"bbox": [12,98,205,214], "points_1": [30,110], "points_2": [35,180]}</answer>', GT, { s1: 0.3, s2: 0.2 });
  assert.is(noCaption.components.discriminative!.value, 0);
});

const ALPHABET = ['<think>', '</think>', '<answer>', '</answer>', '<caption>', '</caption>', '{', '}', '[', ']', '"bbox"', '"points_1"', '"points_2"', ':', ',', ' ', '\n',
  '1', '23', '-7', '1e309', 'NaN', 'Infinity', '-Infinity', '1e-400', '99999999999999999999999', '0.5', '"', '\\', '\\u0000', 'null', 'true', 'false',
  'é', '😀', '\u0085', '\u2028', '\x00', '\ud800', '{{', '}}', 'x'];

function randomResponse(rng: () => number): string {
  const n = Math.floor(rng() * 40);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rng() * ALPHABET.length)];
  if (rng() < 0.3) {
    const num = () => (rng() < 0.1 ? ALPHABET[Math.floor(rng() * ALPHABET.length)] : String(Math.floor(rng() * 900) - 50));
    s = `<think>${s}</think><answer>{"bbox": [${num()},${num()},${num()},${num()}], "points_1": [${num()},${num()}], "points_2": [${num()},${num()}]}</answer><caption>${s}</caption>`;
  }
  return s;
}

test('property: thousands of random and adversarial strings never throw and stay in range', () => {
  const rng = seedrandom('rewards-property');
  const gts = [GT, '<box>(0,0),(0,0)</box><points>(0,0),(0,0)</points>', 'garbage', ''];
  for (let i = 0; i < 5000; i++) {
    const text = randomResponse(rng);
    const gt = gts[i % gts.length];
    const scores = rng() < 0.5 ? { s1: rng() * 2 - 1, s2: rng() * 2 - 1 } : null;
    for (const variant of ['dpad', 'baseline'] as const) {
      for (const mode of ['binary', 'difference', 'scaled'] as const) {
        const r = computeReward(text, gt, scores, { variant, discriminative: mode });
        for (const [k, c] of Object.entries(r.components)) {
          assert.ok(Number.isFinite(c!.value), `${k} not finite for ${JSON.stringify(text)}`);
          if (k === 'discriminative' && mode !== 'binary') assert.ok(c!.value >= -2 && c!.value <= 2, `${k}=${c!.value}`);
          else assert.ok(c!.value === 0 || c!.value === 1, `${k}=${c!.value} for ${JSON.stringify(text)}`);
          if (c!.value === 0 && k !== 'discriminative') assert.type(c!.reason, 'string');
        }
        assert.ok(Number.isFinite(r.total));
      }
    }
    const iv = iouValue(parseResponse(text), parseGroundTruth(gt)).value;
    assert.ok(Number.isFinite(iv) && iv >= 0 && iv <= 1, `iou ${iv}`);
  }
});

test('parser tolerates non-string input and huge strings', () => {
  assert.is(parseResponse(undefined as unknown as string).json, null);
  const huge = '<think>' + 'a'.repeat(200000) + '</think><answer>{"bbox":[1,2,3,4],"points_1":[1,2],"points_2":[2,3]}</answer><caption>c</caption>';
  assert.is(computeReward(huge, GT, null).components.thinking_format!.value, 1);
  assert.is(computeReward('{' + '{'.repeat(10000) + '}', GT, null).total, 0);
});

test('caption scores come from the scorer for captioned responses only, with the GT box', async () => {
  const calls: { box: number[]; texts: string[] }[] = [];
  const stub: CaptionScorer = {
    async scores(_img, box, texts) {
      calls.push({ box: [...box], texts });
      return texts.map(t => (t === 'too long' ? null : { s1: t.length / 10, s2: 0.25 }));
    },
  };
  const img = { width: 4, height: 4, channels: 3, data: new Uint8Array(48) };
  const rs = ['<caption>abc</caption>', 'no caption', '<caption> too long </caption>'].map(parseResponse);
  const s = await captionScores(stub, img, [1, 2, 3, 4], rs);
  assert.equal(calls, [{ box: [1, 2, 3, 4], texts: ['abc', 'too long'] }]);
  assert.ok(Math.abs(s[0]!.s1 - 0.3) < 1e-12);
  assert.is(s[1], null);
  assert.is(s[2], null);
  assert.is(discriminativeReward(s[0]).value, 1);
  assert.equal(await captionScores(stub, img, null, rs), [null, null, null]);
});

test.run();
