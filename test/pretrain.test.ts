import './helpers/setup.ts';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

// tools/pretrain.ts sam2 end to end on a few steps: reproducible from its seed, checkpoints and a
// manifest, and a continued run (--init) records the run it started from
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-pretrain-'));
const tool = new URL('../tools/pretrain.ts', import.meta.url).pathname;

function pretrain(out: string, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', tool, 'sam2', '--out', out, '--steps', '2', '--every', '1', '--batch', '1', '--objects', '2', '--val', '2', '--seed', '3', ...args], { encoding: 'utf8', env: { ...process.env, DPAD_QUIET: '1' } });
  assert.is(r.status, 0, r.stderr.slice(-2000));
  return JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
}

test('pretrain sam2: same seed, same weights; the manifest records the command and the phase it continued', () => {
  const a = path.join(tmp, 'a');
  const b = path.join(tmp, 'b');
  const ma = pretrain(a, '--freeze-encoder');
  pretrain(b, '--freeze-encoder');
  assert.ok(fs.readFileSync(path.join(a, 'model.safetensors')).equals(fs.readFileSync(path.join(b, 'model.safetensors'))), 'bit-identical weights from the same seed');
  assert.match(ma.command, /tools\/pretrain\.ts sam2 .*--freeze-encoder/);
  assert.is(ma.steps, 2);
  assert.ok(Number.isFinite(ma.finalLoss));
  assert.ok(ma.metrics.valBoxIoU >= 0 && ma.metrics.valBoxIoU <= 1);
  const c = path.join(tmp, 'c');
  const mc = pretrain(c, '--init', a);
  assert.is(mc.from.command, ma.command);
  assert.not.ok(fs.readFileSync(path.join(a, 'model.safetensors')).equals(fs.readFileSync(path.join(c, 'model.safetensors'))), 'the continued run trained the encoder too');
});

test('pretrain refuses an unknown model with its usage line', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', tool, 'nope', '--out', tmp], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, 'tools/pretrain.ts: error: the model must be clip, sam2 or policy, got "nope"');
  assert.match(r.stderr, /usage: npx tsx tools\/pretrain\.ts clip\|sam2\|policy --out <dir> \[options\]/);
});

test('pretrain policy checks --align-steps before it trains or writes anything', () => {
  const out = path.join(tmp, 'bad-align');
  const r = spawnSync(process.execPath, ['--import', 'tsx', tool, 'policy', '--out', out, '--align-steps', '3'], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, 'tools/pretrain.ts: error: --align-steps wants D,M or L,D,M (step counts), got "3"');
  assert.not.ok(fs.existsSync(out), 'nothing written');
});

test('pretrain policy checks --size before it trains or writes anything', () => {
  const out = path.join(tmp, 'bad-size');
  const r = spawnSync(process.execPath, ['--import', 'tsx', tool, 'policy', '--out', out, '--size', 'huge'], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, 'tools/pretrain.ts: error: --size wants demo or ground, got "huge"');
  assert.not.ok(fs.existsSync(out), 'nothing written');
});

test.run();
