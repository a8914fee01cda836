/**
 * The real-vocabulary wasm case (issue 20): when the wasm heap cannot hold XNNPACK's packed LM
 * head, the product used to come back as zeros with only an `XNN status ... 6` line on stderr.
 * Now it raises, naming the shape and the native backend; with room it is still exact.
 */
import './helpers/setup.ts';
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

function child(mode: 'roomy' | 'full') {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/wasm-heap-child.ts', mode], { encoding: 'utf8', env: { ...process.env, DPAD_BACKEND: 'wasm' }, timeout: 180_000 });
  assert.is(r.status, 0, r.stderr.slice(-2000));
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(out.backend, 'wasm');
  return out as { got: number[][]; reference: number[]; error: string | null; zeros: boolean };
}

test('with room, a product at 151,936 tokens is exact, twice (the packed weight is reused)', () => {
  const out = child('roomy');
  assert.is(out.error, null);
  assert.is(out.zeros, false);
  for (const row of out.got) row.forEach((v, j) => assert.ok(Math.abs(v - out.reference[j]) < 1e-4, `column ${j}: ${v} vs ${out.reference[j]}`));
});

test('on a nearly full wasm heap it raises instead of returning zeros', () => {
  const out = child('full');
  assert.is(out.zeros, false, 'the product silently returned zeros');
  assert.match(String(out.error), /^WasmHeapError: wasm: a \[2,896\] x \[896,151936\] product needs 0\.53 GiB of working memory, which the wasm heap \([\d.]+ GiB in use of its 4\.00 GiB limit\) cannot give; on wasm it would silently return zeros\. Use the native backend: npm run setup:native, then DPAD_BACKEND=tensorflow$/);
});

test.run();
