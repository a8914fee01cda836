/**
 * Scoring is bounded: the scans are linear on 1 MB adversarial texts, the parsers refuse texts
 * over MAX_RESPONSE_CHARS with a reason, and deep JSON nesting is a RecursionError, not a stack overflow.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeReward } from '../src/rewards/registry.ts';
import { extractPrediction, extractThink } from '../src/prompt/extract.ts';
import { parseResponse } from '../src/prompt/answer.ts';
import { PyError, pyJsonLoads } from '../src/util/pycompat.ts';
import { firstBraceObject, firstLazyTag, firstTaggedQuad, firstThinkNoLt, MAX_RESPONSE_CHARS, thinkingFormatMatches } from '../src/prompt/scan.ts';

const MB = 1 << 20;
const fill = (unit: string, n = MB) => unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
const GT = '<box>(10,20),(300,400)</box><points>(50,60),(200,300)</points>';

// the worst cases of the old regexes: many starts that each scan to the end
const ADVERSARIAL: Record<string, string> = {
  'open braces': fill('{'),
  'brace then spaces': '{' + fill(' ', MB - 1),
  'think/answer soup': '<think>' + fill('</think> <answer></answer> <caption>'),
  'think, then answer tags': '<think></think><answer>' + fill('</answer>\u3000'),
  'caption opens': fill('<caption>'),
  'think opens': fill('<think>a'),
  'box openers': fill('<box>(1,2),(3,4)'),
  'digits': '<box>(' + fill('7'),
};

/**
 * Every scan on one input; the fastest of three runs in ms. (Not a speed benchmark: the checks
 * below compare the growth from 64 KB to 1 MB, linear ~16x against the old regexes' 256x or more,
 * with a generous absolute backstop: the old format regex took over 150 s on 1 MB.)
 */
function scanMs(s: string): number {
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    firstBraceObject(s);
    thinkingFormatMatches(s, true);
    thinkingFormatMatches(s, false);
    firstLazyTag(s, '<caption>', '</caption>');
    firstLazyTag(s, '<answer>', '</answer>');
    firstThinkNoLt(s);
    firstTaggedQuad(s, 'box');
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

test('1 MB adversarial responses: every scan grows linearly with the input', () => {
  for (const [name, s] of Object.entries(ADVERSARIAL)) {
    const small = scanMs(s.slice(0, s.length >> 4));
    const big = scanMs(s);
    assert.ok(big < 64 * small + 50, `${name}: ${big.toFixed(1)} ms for 1 MB against ${small.toFixed(1)} ms for 64 KB (linear is ~16x)`);
    assert.ok(big < 5000, `${name}: ${big.toFixed(0)} ms`);
  }
  // a 1 MB response that does match, end to end
  const big = '<think>' + fill('a', MB) + '</think><answer>{"bbox": [1, 2, 3, 4]}</answer><caption>x</caption>';
  assert.ok(thinkingFormatMatches(big, true));
  assert.is(firstThinkNoLt(big)!.length, MB);
});

test('a response over the bound scores 0 with the reason, fast; the evaluation parser raises a parse failure', () => {
  const s = '<think>x</think><answer>{"bbox": [10, 20, 300, 400], "points_1": [50, 60], "points_2": [200, 300]}</answer><caption>a</caption>' + ' '.repeat(MB);
  const why = `response is ${s.length} characters, over the parser's limit of 262144`;
  const t0 = performance.now();
  const p = parseResponse(s);
  assert.is(p.rejected, why);
  const r = computeReward(p, GT, { s1: 0.3, s2: 0.2 });
  assert.is(r.total, 0);
  for (const [k, v] of Object.entries(r.components)) assert.is(v!.value, 0, k);
  assert.is(r.components.thinking_format!.reason, why);
  assert.is(r.components.segmentation_format!.reason, why);
  try {
    extractPrediction(s, 1, 1);
    assert.unreachable('no parse over the bound');
  } catch (e) {
    assert.ok(e instanceof PyError);
    assert.is((e as PyError).detail, why);
    assert.is((e as PyError).kind, 'ValueError');
  }
  assert.is(extractThink(s), '');
  assert.ok(performance.now() - t0 < 5000);
  // at the bound the response is read
  const at = s.slice(0, MAX_RESPONSE_CHARS);
  assert.is(parseResponse(at).rejected, undefined);
  assert.is(extractPrediction(at, 1, 1).bbox[2], 300);
});

test('adversarial responses just under the bound are scored in bounded time (the old regexes took seconds to minutes)', () => {
  const n = MAX_RESPONSE_CHARS - 1;
  for (const s of [fill('{', n), fill('<think></think> <answer>', n), fill('<caption><think>', n), '{"bbox": [' + fill('1,', n - 20)]) {
    const t0 = performance.now();
    computeReward(s, GT, null);
    try { extractPrediction(s, 1, 1); } catch { /* a parse failure */ }
    const ms = performance.now() - t0;
    assert.ok(ms < 5000, `${JSON.stringify(s.slice(0, 20))}: ${ms.toFixed(0)} ms`);
  }
});

test('JSON nested deeper than 1000 levels is a RecursionError (CPython), never a stack overflow', () => {
  const deep = (d: number) => '{"bbox": ' + '['.repeat(d) + ']'.repeat(d) + '}';
  assert.equal(pyJsonLoads('[[[]]]'), [[[]]]);
  pyJsonLoads('[' .repeat(1000) + ']'.repeat(1000));
  const err = (f: () => unknown) => { try { f(); } catch (e) { return e; } return null; };
  const e = err(() => pyJsonLoads('['.repeat(1001) + ']'.repeat(1001))) as PyError;
  assert.is(e.kind, 'RecursionError');
  assert.is(e.detail, 'maximum recursion depth exceeded while decoding a JSON array from a unicode string');
  const p = parseResponse(deep(100_000));
  assert.is(p.jsonError, 'RecursionError: maximum recursion depth exceeded while decoding a JSON array from a unicode string');
  const x = err(() => extractPrediction(deep(100_000), 1, 1));
  assert.ok(x instanceof PyError, String(x));
});

test.run();
