/**
 * Runs the golden harness over every fixture directory in ../shared/fixtures. A family without
 * an adapter fails here unless it is named in PENDING_FAMILIES; for those, the harness must
 * report exactly "no adapter" for every case (and nothing else).
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLine, readFixture, runFixture } from '../tools/golden/harness.ts';
import { ADAPTERS } from '../tools/golden/registry.ts';
import { FIXTURES } from './helpers/setup.ts';

/** Families whose issue has not landed yet; each model issue removes its own. */
export const PENDING_FAMILIES: string[] = [];

const dirs = fs.existsSync(FIXTURES) ? fs.readdirSync(FIXTURES).map(d => path.join(FIXTURES, d)).filter(d => fs.statSync(d).isDirectory()).sort() : [];

test('fixtures are present', () => {
  assert.ok(dirs.length > 0, `no fixture directories in ${FIXTURES}`);
});

for (const dir of dirs) {
  const name = path.basename(dir);
  test(`golden: ${name}`, async () => {
    const fx = readFixture(dir);
    const pending = PENDING_FAMILIES.includes(fx.family);
    assert.ok(pending || ADAPTERS.has(fx.family), `family '${fx.family}' has no adapter and is not in PENDING_FAMILIES`);
    const r = await runFixture(dir, ADAPTERS);
    if (pending) {
      assert.is(r.lines.length, 0, `${name}: a pending family should check nothing`);
      assert.is(r.errors.length, fx.cases.length);
      for (const e of r.errors) assert.match(e, new RegExp(`no adapter for ${fx.family}\\.\\*`));
      return;
    }
    assert.is(r.errors.length, 0, r.errors.join('\n'));
    const failed = r.lines.filter(l => !l.pass);
    assert.is(failed.length, 0, failed.map(formatLine).join('\n'));
    assert.ok(r.lines.length >= fx.cases.length, `${name}: ${r.lines.length} checks for ${fx.cases.length} cases`);
  });
}

test('the harness refuses a malformed fixture and an unknown check', () => {
  const tmp = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'dpad-golden-'));
  fs.writeFileSync(path.join(tmp, 'fixture.json'), JSON.stringify({ family: 'rewards', cases: [{ name: 'x', entry: 'rewards.discriminative', inputs: {}, outputs: { a: { value: 1, check: 'roughly' } } }] }));
  assert.throws(() => readFixture(tmp), /unknown check 'roughly'/);
  fs.writeFileSync(path.join(tmp, 'fixture.json'), '{"family": "rewards"}');
  assert.throws(() => readFixture(tmp), /no 'cases' list/);
});

test('a wrong value fails its check', async () => {
  const tmp = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'dpad-golden-'));
  fs.writeFileSync(path.join(tmp, 'fixture.json'), JSON.stringify({ family: 'rewards', cases: [{ name: 'x', entry: 'rewards.discriminative', inputs: { s1: 0.3, s2: 0.2 }, outputs: { binary: { value: 0, check: 'exact' }, snr: { value: 1.5, check: 'allclose', atol: 1e-9 } } }] }));
  const r = await runFixture(tmp, ADAPTERS);
  assert.equal(r.lines.map(l => l.pass), [false, true]);
});

test.run();
