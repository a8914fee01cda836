import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeWorldTokenizer } from '../src/demo/models.ts';
import { numberMerges } from '../src/demo/tokenizer.ts';
import { PolicyTokenizer } from '../src/models/qwen2_5_vl/tokenizer.ts';

test('number merges: every integer up to the view is one token, with or without its leading space, inside the answer JSON', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-numtok-'));
  try {
    const corpus = ['<answer>{"bbox": [21, 27, 48, 54], "points_1": [34, 41]}</answer>', 'There are 5 objects. It is a large dotted blue circle.'];
    writeWorldTokenizer(dir, { merges: 40, corpus, numbers: 224 });
    const tok = PolicyTokenizer.load(dir);
    for (let n = 0; n <= 224; n++) {
      for (const text of [String(n), ` ${n}`]) assert.is(tok.encode(text).length, 1, `${JSON.stringify(text)} is ${tok.encode(text).length} tokens`);
    }
    const json = '{"bbox": [0, 7, 100, 207], "points_1": [224, 74]}';
    const ids = tok.encode(json);
    assert.is(tok.decode(ids), json);
    // "[0" and "[224" split as "[" + number; ", 7" as "," + " 7"
    assert.ok(ids.map(i => tok.decode([i])).includes('224') && ids.map(i => tok.decode([i])).includes(' 207'));
    // past the range numbers still encode (in pieces)
    assert.ok(tok.encode(' 225').length > 1);
    assert.is(tok.decode(tok.encode('[225, 999]')), '[225, 999]');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('number merges: no four-digit numbers, and every three-digit number has both of its splits', () => {
  assert.throws(() => numberMerges(1000), /numberMerges: 1000 has more than three digits/);
  const m = numberMerges(274).map(p => p.join(' '));
  for (const p of ['Ġ 2', 'Ġ2 7', '2 7', 'Ġ27 4', '27 4', '2 74']) assert.ok(m.includes(p), p);
  assert.ok(!m.includes('2 07'), 'no split at a zero');
  assert.ok(m.indexOf('Ġ2 7') < m.indexOf('2 7'), 'spaced prefixes first');
});

test.run();
