/**
 * The linear-time scans (src/rewards/scan.ts) against the regexes they replace, on a seeded fuzz
 * corpus of 12,000 responses (mutations of valid responses, tag soup, nested braces, Unicode,
 * whitespace): every result identical. The regexes below are the oracle (the implementation
 * before the scans, which is CPython's `re` on these patterns); the inputs stay short so their
 * backtracking stays fast.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { extractPrediction, extractThink } from '../src/prompt/extract.ts';
import { parseGroundTruth, parseResponse } from '../src/prompt/answer.ts';
import { PY_WHITESPACE, PyError, pyAsciiDigits, pyJsonLoads, pyStrip, type PyValue } from '../src/util/pycompat.ts';
import { firstBraceObject, firstLazyTag, firstTaggedQuad, firstThinkNoLt, thinkingFormatMatches } from '../src/prompt/scan.ts';

// ---- the oracle: the regexes the parsers used before the scans ----
const S = `[${PY_WHITESPACE}]*`;
const DPAD_FORMAT = new RegExp(`^<think>[^]*?</think>${S}<answer>[^]*?</answer>${S}<caption>[^]*?</caption>$`);
const BASELINE_FORMAT = new RegExp(`^<think>[^]*?</think>${S}<answer>[^]*?</answer>$`);
const FIRST_JSON = /\{[^}]+\}/;
const CAPTION = /<caption>([^]*?)<\/caption>/;
const THINK = /<think>([^<]+)<\/think>/;
const ANSWER = /<answer>([^]*?)<\/answer>/;
// Python's \d in a str pattern: Unicode decimal digits
const GT_BOX = /<box>\((\p{Nd}+),(\p{Nd}+)\),\((\p{Nd}+),(\p{Nd}+)\)<\/box>/u;
const GT_POINTS = /<points>\((\p{Nd}+),(\p{Nd}+)\),\((\p{Nd}+),(\p{Nd}+)\)<\/points>/u;
const quad = (m: RegExpExecArray | null) => (m ? [1, 2, 3, 4].map(k => Number(pyAsciiDigits(m[k]))) : null);

function oracleParse(s: string) {
  const m = FIRST_JSON.exec(s);
  let json: PyValue | null = null;
  let jsonError: string | null = null;
  if (!m) jsonError = 'no {...} object in the response';
  else {
    try {
      json = pyJsonLoads(m[0]);
    } catch (e) {
      jsonError = e instanceof PyError ? e.message : String(e);
    }
  }
  const cap = CAPTION.exec(s);
  const th = THINK.exec(s);
  const an = ANSWER.exec(s);
  return {
    text: s, thinkingFormatDpad: DPAD_FORMAT.test(s), thinkingFormatBaseline: BASELINE_FORMAT.test(s), json, jsonError,
    caption: cap ? pyStrip(cap[1]) : null, think: th ? th[1] : null, answer: an ? an[1] : null,
  };
}

// ---- the corpus ----
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  '<think>', '</think>', '<answer>', '</answer>', '<caption>', '</caption>', '<think', '</answer', 'caption>', '<', '>', '/',
  '{', '}', '{}', '{"bbox": [1, 2, 30, 40]', '"points_1": [5, 6]', '"points_2": [7, 8]', '"Pred_BBox"', ':', ',', '[', ']', '"', '\\',
  ' ', '  ', '\n', '\t', '\r\n', '\x0b', '\x1c', '\x85', '\xa0', '\u2003', '\u3000', '\u2028', '\ufeff', '\u200b',
  '1', '42', '-3', '0.5', 'NaN', 'Infinity', 'null', 'true', '"12"', '\u0663', '\uff17', '\u{1d7d9}', 'é', '日本', '😀', '\ud800', 'x', 'the dog',
  '<box>(', ')</box>', '<points>(', ')</points>', '),(', '(', ')',
];
const VALID = [
  '<think>the red car on the left</think>\n<answer>{"bbox": [10, 20, 300, 400], "points_1": [50, 60], "points_2": [200, 300]}</answer>\n<caption>a red car</caption>',
  '<think>two boxes</think><answer>{"bbox": [1,2,3,4],"points_1":[1,1],"points_2":[2,2]}</answer>',
  '<think> why </think> <answer>{"bbox": [10.5, "20", 30, 40], "points_1": [11, 21], "points_2": [29, 39]}</answer> <caption> the small dog </caption>',
  '<think>a<b</think><answer>{"BBox_2d": [5, 5, 9, 9], "Points_A": [6, 6], "pointsB": [7, 7]}</answer><caption>x</caption><caption>y</caption>',
];
const GTS = ['<box>(49,9),(568,532)</box><points>(199,159),(379,359)</points>', '<box>(\u0661\u0662,3),(4,\uff15)</box><points>(\u{1d7d9},2),(3,4)</points>'];

function mutate(r: () => number, s: string): string {
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
  const n = 1 + Math.floor(r() * 4);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(r() * (s.length + 1));
    const j = Math.min(s.length, i + Math.floor(r() * 12));
    switch (Math.floor(r() * 6)) {
      case 0: s = s.slice(0, i) + s.slice(j); break; // delete
      case 1: s = s.slice(0, i) + pick(PIECES) + s.slice(i); break; // insert a piece
      case 2: s = s.slice(0, i) + s.slice(i, j) + s.slice(i); break; // duplicate
      case 3: s = s.slice(0, i) + pick(PIECES) + s.slice(j); break; // replace
      case 4: s = s + pick(PIECES); break; // trailing
      default: s = pick(PIECES) + s; break; // leading
    }
  }
  return s;
}

function corpus(seed: number, n: number): string[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const kind = k % 4;
    if (kind === 0) out.push(mutate(r, pick(VALID)));
    else if (kind === 1) out.push(Array.from({ length: 1 + Math.floor(r() * 24) }, () => pick(PIECES)).join(''));
    else if (kind === 2) {
      // nested and unbalanced braces around a valid answer
      const d = Math.floor(r() * 5);
      out.push(mutate(r, '{'.repeat(d) + pick(VALID) + '}'.repeat(Math.floor(r() * 5)) + pick(['', '{', '{}', '{ }'])));
    } else out.push(mutate(r, pick(GTS) + pick(VALID)));
  }
  return out;
}

const show = (v: unknown) => JSON.stringify(v, (_k, x) => (x instanceof Map ? { map: [...x.entries()] } : typeof x === 'number' && !Number.isFinite(x) ? String(x) : x));
const outcome = (s: string) => {
  try {
    return { ok: extractPrediction(s, 1.5, 0.75) };
  } catch (e) {
    return { error: e instanceof PyError ? e.detail : `not a PyError: ${(e as Error).message}` };
  }
};
function oracleOutcome(s: string) {
  // extractPrediction is a function of the first {...} (box, points, errors) and of the think
  const m = FIRST_JSON.exec(s);
  const th = THINK.exec(s);
  const base = outcome(m ? m[0] : '');
  return 'ok' in base ? { ok: { ...base.ok, think: th ? th[1] : '' } } : base;
}

test('12,000 fuzzed responses: the scans equal the regexes on every pattern (format, JSON, caption, think, answer, ground truth)', () => {
  const t0 = performance.now();
  const texts = corpus(20_240_601, 12_000);
  let matchedFormat = 0, matchedJson = 0, matchedGt = 0;
  for (const s of texts) {
    const where = `on ${JSON.stringify(s)}`;
    const m = FIRST_JSON.exec(s);
    assert.is(firstBraceObject(s), m ? m[0] : null, `first {...} ${where}`);
    assert.is(thinkingFormatMatches(s, true), DPAD_FORMAT.test(s), `DPAD format ${where}`);
    assert.is(thinkingFormatMatches(s, false), BASELINE_FORMAT.test(s), `Seg-Zero format ${where}`);
    const c = CAPTION.exec(s), a = ANSWER.exec(s), t = THINK.exec(s);
    assert.is(firstLazyTag(s, '<caption>', '</caption>'), c ? c[1] : null, `caption ${where}`);
    assert.is(firstLazyTag(s, '<answer>', '</answer>'), a ? a[1] : null, `answer ${where}`);
    assert.is(firstThinkNoLt(s), t ? t[1] : null, `think ${where}`);
    assert.is(extractThink(s), t ? t[1] : '', `extractThink ${where}`);
    assert.equal(firstTaggedQuad(s, 'box'), quad(GT_BOX.exec(s)), `GT box ${where}`);
    assert.equal(firstTaggedQuad(s, 'points'), quad(GT_POINTS.exec(s)), `GT points ${where}`);
    const gt = parseGroundTruth(s);
    assert.equal(gt.box, quad(GT_BOX.exec(pyStrip(s))), `parseGroundTruth ${where}`);
    assert.is(show(parseResponse(s)), show(oracleParse(s)), `parseResponse ${where}`);
    assert.is(show(outcome(s)), show(oracleOutcome(s)), `extractPrediction ${where}`);
    if (DPAD_FORMAT.test(s) || BASELINE_FORMAT.test(s)) matchedFormat++;
    if (m) matchedJson++;
    if (gt.box) matchedGt++;
  }
  // the corpus exercises both outcomes of each pattern
  assert.ok(matchedFormat > 500 && matchedFormat < 11_500, `format matched ${matchedFormat} times`);
  assert.ok(matchedJson > 1000 && matchedJson < 11_500, `JSON found ${matchedJson} times`);
  assert.ok(matchedGt > 300, `GT box found ${matchedGt} times`);
  const ms = performance.now() - t0;
  assert.ok(ms < 30000, `the corpus took ${ms.toFixed(0)} ms`);
});

test('hand-picked corner cases of the patterns', () => {
  const cases = [
    '', '{}', '{ }', '{}{a}', '{{}', '}{x}', '<think></think><answer></answer><caption></caption>',
    '<think></think><answer></answer><caption></caption>\n', '<think></think>\u3000\x1c<answer></answer>\x85<caption></caption>',
    '<think></think>\ufeff<answer></answer><caption></caption>', '<think></think><answer></answer></answer>\n<caption>x</caption><caption>y</caption>',
    '<think>a</think><answer>b</think> <answer>c</answer>', '<think><think>x</think>', '<think></think>', '<think>x\n</think>',
    '<answer>a<answer>b</answer>', '<caption><caption></caption>', '<box>(1,2),(3,4)<box>(5,6),(7,8)</box>', '<box>(1,2),(3,4)</box',
    '<box>(\u0661,\u{1d7d9}),(\uff13,4)</box>', '<box>(\ud835,1),(1,1)</box>', '<box>(\u00b2,1),(1,1)</box>',
  ];
  for (const s of cases) {
    const m = FIRST_JSON.exec(s), t = THINK.exec(s), c = CAPTION.exec(s);
    assert.is(firstBraceObject(s), m ? m[0] : null, s);
    assert.is(thinkingFormatMatches(s, true), DPAD_FORMAT.test(s), s);
    assert.is(thinkingFormatMatches(s, false), BASELINE_FORMAT.test(s), s);
    assert.is(firstThinkNoLt(s), t ? t[1] : null, s);
    assert.is(firstLazyTag(s, '<caption>', '</caption>'), c ? c[1] : null, s);
    assert.equal(firstTaggedQuad(s, 'box'), quad(GT_BOX.exec(s)), s);
  }
  assert.equal(parseGroundTruth('<box>(\u0661\u0662,3),(4,\uff15)</box>').box, [12, 3, 4, 5], 'int() of Unicode digits, as Python');
  assert.equal(parseGroundTruth('<box>(\u00b2,1),(1,1)</box>').box, null, 'superscript two is not a decimal digit');
});

test.run();
