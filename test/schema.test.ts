import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, defaultsOf, describeSchema, leaves, validate, type Schema } from '../src/util/schema.ts';

const S = {
  steps: { type: 'int', min: 0, nullable: true, default: null, doc: 'updates' },
  count: { type: 'int', min: 1, default: 4, doc: 'a count' },
  rate: { type: 'number', min: 0, exclusiveMin: true, default: 1, doc: 'a rate' },
  frac: { type: 'number', min: 0, max: 1, exclusiveMax: true, default: 0.5, doc: 'a fraction' },
  w: { type: 'number', default: 1, doc: 'a weight' },
  mode: { type: 'enum', values: ['fast', 'slow', 'exact'], default: 'fast', doc: 'a mode' },
  on: { type: 'boolean', default: false, doc: 'a switch' },
  name: { type: 'string', default: 'x', doc: 'a name' },
  pair: { type: 'tuple', min: 0, max: 1, default: [0.1, 0.2], doc: 'two numbers' },
  sub: { type: 'object', doc: 'nested', fields: { depth: { type: 'int', min: 0, default: 2, doc: 'depth' }, inner: { type: 'object', doc: 'deeper', fields: { k: { type: 'number', default: 3, doc: 'k' } } } } },
} as const satisfies Schema;

const err = (raw: unknown) => {
  try {
    validate(S, raw, 'runs/x.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message;
  }
  throw new Error(`no error for ${JSON.stringify(raw)}`);
};

test('defaults fill absent (and undefined) fields; present ones are kept; the result is a fresh value', () => {
  const v = validate(S, { count: 7, sub: { inner: {} }, rate: undefined }, 'f');
  assert.equal(v, { steps: null, count: 7, rate: 1, frac: 0.5, w: 1, mode: 'fast', on: false, name: 'x', pair: [0.1, 0.2], sub: { depth: 2, inner: { k: 3 } } });
  const d = defaultsOf(S);
  d.pair[0] = 9;
  d.sub.depth = 9;
  assert.equal(defaultsOf(S).pair, [0.1, 0.2], 'defaultsOf gives copies');
  assert.is(defaultsOf(S).sub.depth, 2);
  const raw = { pair: [0, 1] };
  const out = validate(S, raw, 'f');
  out.pair[0] = 5;
  assert.equal(raw.pair, [0, 1], 'the input is not aliased');
});

test('unknown keys are refused with the file, the dotted path and a did-you-mean', () => {
  assert.is(err({ stesp: 1 }), "runs/x.json: unknown key 'stesp' (did you mean 'steps'?)");
  assert.is(err({ sub: { dpeth: 1 } }), "runs/x.json: unknown key 'sub.dpeth' (did you mean 'sub.depth'?)");
  assert.is(err({ sub: { inner: { zzzzzz: 1 } } }), "runs/x.json: unknown key 'sub.inner.zzzzzz' (the keys of 'sub.inner' are k)");
  assert.is(err({ qqqqqqqq: 1 }), "runs/x.json: unknown key 'qqqqqqqq' (the known keys are steps, count, rate, frac, w, mode, on, name, pair, sub)");
});

test('types and ranges are checked, naming the field and what it accepts', () => {
  assert.is(err({ steps: 2.5 }), "runs/x.json: 'steps' must be an integer >= 0 or null (got 2.5)");
  assert.is(err({ count: 0 }), "runs/x.json: 'count' must be a positive integer (got 0)");
  assert.is(err({ count: null }), "runs/x.json: 'count' must be a positive integer (got null)");
  assert.is(err({ rate: 0 }), "runs/x.json: 'rate' must be a number > 0 (got 0)");
  assert.is(err({ rate: NaN }), "runs/x.json: 'rate' must be a number > 0 (got NaN)");
  assert.is(err({ frac: 1 }), "runs/x.json: 'frac' must be a number in [0, 1) (got 1)");
  assert.is(err({ w: '1' }), "runs/x.json: 'w' must be a finite number (got \"1\")");
  assert.is(err({ w: Infinity }), "runs/x.json: 'w' must be a finite number (got Infinity)");
  assert.is(err({ mode: 'slwo' }), "runs/x.json: 'mode' must be one of 'fast', 'slow' or 'exact' (got \"slwo\"; did you mean 'slow'?)");
  assert.is(err({ mode: 3 }), "runs/x.json: 'mode' must be one of 'fast', 'slow' or 'exact' (got 3)");
  assert.is(err({ on: 'yes' }), "runs/x.json: 'on' must be true or false (got \"yes\")");
  assert.is(err({ name: '' }), "runs/x.json: 'name' must be a non-empty string (got \"\")");
  assert.is(err({ pair: [0.1] }), "runs/x.json: 'pair' must be a list of 2 numbers, each in [0, 1] (got [0.1])");
  assert.is(err({ pair: [0.1, 2] }), "runs/x.json: 'pair' must be a list of 2 numbers, each in [0, 1] (got [0.1,2])");
  assert.is(err({ sub: [] }), "runs/x.json: 'sub' must be an object (got [])");
  assert.is(err({ sub: { inner: { k: 'a' } } }), "runs/x.json: 'sub.inner.k' must be a finite number (got \"a\")");
  assert.is(err([1, 2]), 'runs/x.json: the config must be a JSON object (got [1,2])');
  assert.is(err(null), 'runs/x.json: the config must be a JSON object (got null)');
});

test('describeSchema lists every field with its range, default and doc; leaves gives dotted paths', () => {
  const lines = describeSchema(S);
  assert.ok(lines.includes('rate: a number > 0, default 1. a rate'), lines.join('\n'));
  assert.ok(lines.includes('sub.inner.k: a finite number, default 3. k'), lines.join('\n'));
  assert.ok(lines.includes("mode: one of 'fast', 'slow' or 'exact', default \"fast\". a mode"), lines.join('\n'));
  assert.equal(leaves({ a: 1, b: { c: [1, 2], d: { e: null } } }), [['a', 1], ['b.c', [1, 2]], ['b.d.e', null]]);
});

const L = {
  extra: {
    type: 'object', nullable: true, doc: 'an optional section',
    fields: {
      r: { type: 'int', min: 1, default: 8, doc: 'a rank' },
      names: { type: 'strings', default: ['a', 'b'], doc: 'some names' },
      picks: { type: 'strings', values: ['x', 'y', 'zeta'], minLength: 1, default: ['x'], doc: 'picked names' },
    },
  },
  tags: { type: 'strings', default: [], doc: 'free tags' },
} as const satisfies Schema;

const errL = (raw: unknown) => {
  try {
    validate(L, raw, 'runs/l.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message;
  }
  throw new Error(`no error for ${JSON.stringify(raw)}`);
};

test('a nullable section: absent or null is off (null), an object (even {}) is on with its defaults', () => {
  assert.equal(validate(L, {}, 'f'), { extra: null, tags: [] });
  assert.equal(validate(L, { extra: null }, 'f').extra, null);
  assert.equal(validate(L, { extra: {} }, 'f').extra, { r: 8, names: ['a', 'b'], picks: ['x'] });
  const v = validate(L, { extra: { r: 2, names: ['q'] }, tags: ['t1', 't2'] }, 'f');
  assert.equal(v, { extra: { r: 2, names: ['q'], picks: ['x'] }, tags: ['t1', 't2'] });
  // the inferred type: the section is `{...} | null`, the lists string[]
  const r: number | undefined = v.extra?.r;
  const names: string[] = v.tags;
  assert.is(r, 2); assert.equal(names, ['t1', 't2']);
  const d = defaultsOf(L);
  d.tags.push('z');
  assert.equal(defaultsOf(L).tags, [], 'defaultsOf gives copies of lists');
  const raw = { tags: ['a'] };
  validate(L, raw, 'f').tags.push('b');
  assert.equal(raw.tags, ['a'], 'the input list is not aliased');
});

test('nullable sections and string lists are checked, naming the field and the entry', () => {
  assert.is(errL({ extra: 3 }), "runs/l.json: 'extra' must be an object or null (got 3)");
  assert.is(errL({ extra: [] }), "runs/l.json: 'extra' must be an object or null (got [])");
  assert.is(errL({ extra: { rr: 1 } }), "runs/l.json: unknown key 'extra.rr' (did you mean 'extra.r'?)");
  assert.is(errL({ extra: { r: 0 } }), "runs/l.json: 'extra.r' must be a positive integer (got 0)");
  assert.is(errL({ tags: 'a' }), "runs/l.json: 'tags' must be a list of non-empty strings, without repeats (got \"a\")");
  assert.is(errL({ tags: ['a', 3] }), "runs/l.json: 'tags[1]' must be a non-empty string (got 3)");
  assert.is(errL({ tags: ['a', ''] }), "runs/l.json: 'tags[1]' must be a non-empty string (got \"\")");
  assert.is(errL({ tags: ['a', 'b', 'a'] }), "runs/l.json: 'tags[2]' repeats \"a\" (entry 0)");
  assert.is(errL({ extra: { picks: [] } }), "runs/l.json: 'extra.picks' must be a list of names from one of 'x', 'y' or 'zeta' (at least 1), without repeats (got [])");
  assert.is(errL({ extra: { picks: ['y', 'zeat'] } }), "runs/l.json: 'extra.picks[1]' must be one of 'x', 'y' or 'zeta' (got \"zeat\"; did you mean 'zeta'?)");
  const lines = describeSchema(L);
  assert.ok(lines.includes('extra: an object or null, default null. an optional section'), lines.join('\n'));
  assert.ok(lines.includes('extra.names: a list of non-empty strings, without repeats, default ["a","b"]. some names'), lines.join('\n'));
  assert.ok(lines.includes('tags: a list of non-empty strings, without repeats, default []. free tags'), lines.join('\n'));
});

test.run();
