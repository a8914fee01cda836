import './helpers/setup.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DPAD_PROMPT, normalizeQuery, userPrompt } from '../src/prompt/template.ts';

// expected values: Python 3.11 `q.lower().strip(".")`, as DPAD's rl_dataset.py and evaluation.py apply it
const CASES: [string, string][] = [
  ['The man on the left.', 'the man on the left'],
  ['...leading dots...', 'leading dots'],
  ['A cat. ', 'a cat. '],
  ['.', ''],
  ['', ''],
  ["Mr. Smith's CAR..", "mr. smith's car"],
  [' spaced. ', ' spaced. '],
  ['ΣΑΣ.', 'σας'],
  ['Dots . . inside', 'dots . . inside'],
];

test('normalizeQuery is lower().strip("."): dots removed at both ends, nothing else', () => {
  for (const [q, want] of CASES) assert.is(normalizeQuery(q), want, JSON.stringify(q));
});

test('userPrompt inserts the normalised query literally', () => {
  assert.is(userPrompt('.The Red CUP.'), DPAD_PROMPT.replace('{Question}', 'the red cup'));
  assert.ok(userPrompt("price $& tag $1.").startsWith("Please find 'price $& tag $1' with bbox"));
  assert.ok(userPrompt('Left dog.', 'baseline').startsWith("Please find 'left dog' with bbox"));
});

test.run();
