/**
 * npm run golden -- [<fixture-dir>...]   (no argument: every fixture in ../shared/fixtures)
 * One line per checked output, then `N passed, M failed`; exits 1 on any failure, on an
 * entry no adapter knows, or on a malformed fixture.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../src/backend.ts';
import { runCli, UsageError } from '../src/util/cli.ts';
import { formatLine, runFixture } from './golden/harness.ts';
import { ADAPTERS } from './golden/registry.ts';

const SPEC = {
  name: 'npm run golden --',
  summary: "Run the golden fixtures (outputs of the official code) through the project's code: one line per checked output, then 'N passed, M failed'; exit 1 on any failure.",
  options: {
    root: { type: 'string', default: '../shared/fixtures', placeholder: '<dir>', help: 'the folder of fixture directories used when none is named' },
  },
  positionals: { name: '<fixture-dir>', help: 'fixture directories to run (default: every one under --root)' },
  examples: ['npm run golden', 'npm run golden -- ../shared/fixtures/sam2-tiny-pt'],
} as const;

await runCli(SPEC, async args => {
  let dirs = args._;
  for (const d of dirs) if (!fs.existsSync(path.join(d, 'fixture.json'))) throw new UsageError(`${d}: not a fixture directory (no fixture.json)`);
  if (dirs.length === 0) {
    const root = path.resolve(args.root);
    if (!fs.existsSync(root)) throw new UsageError(`${root}: no such folder of fixtures`);
    dirs = fs.readdirSync(root).map(d => path.join(root, d)).filter(d => fs.statSync(d).isDirectory()).sort();
  }
  await initBackend();
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
});
