/**
 * npm run golden -- <fixture-dir>...   (no argument: every fixture in ../shared/fixtures)
 * One line per checked output, then `N passed, M failed`; exits 1 on any failure, on an
 * entry no adapter knows, or on a malformed fixture.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../src/backend.ts';
import { formatLine, runFixture } from './golden/harness.ts';
import { ADAPTERS } from './golden/registry.ts';

async function main(): Promise<number> {
  await initBackend();
  let dirs = process.argv.slice(2).filter(a => a !== '--');
  if (dirs.length === 0) {
    const root = path.resolve('../shared/fixtures');
    dirs = fs.readdirSync(root).map(d => path.join(root, d)).filter(d => fs.statSync(d).isDirectory()).sort();
  }
  let passed = 0;
  let failed = 0;
  for (const dir of dirs) {
    try {
      const r = await runFixture(dir, ADAPTERS, { onLine: l => console.log(typeof l === 'string' ? `FAIL  ${l}` : formatLine(l)) });
      for (const l of r.lines) l.pass ? passed++ : failed++;
      failed += r.errors.length;
    } catch (e) {
      console.log(`FAIL  ${(e as Error).message}`);
      failed++;
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(code => process.exit(code), e => { console.error(e); process.exit(1); });
