/**
 * The shared CLI layer (src/util/cli.ts) and the one error path of the real CLIs: --help exits 0
 * with a usage, bad flags and values are refused by name with a did-you-mean, and a runtime error
 * (a missing image) is one short message with exit code 1, not the wasm runtime's 39 KB dump.
 */
import './helpers/setup.ts';
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { didYouMean, parseCli, usageText, UsageError } from '../src/util/cli.ts';

const SPEC = {
  name: 'npm run thing --',
  summary: 'A thing.',
  options: {
    image: { type: 'string', required: true, help: 'the image' },
    steps: { type: 'int', default: 3, min: 1, help: 'steps' },
    lr: { type: 'number', default: 0.5, help: 'rate' },
    mode: { type: 'string', default: 'a', choices: ['alpha', 'beta', 'a'], help: 'mode' },
    data: { type: 'list', default: ['x'], help: 'data' },
    fresh: { type: 'boolean', help: 'start over' },
  },
} as const;

function usageError(argv: string[]): string {
  try {
    parseCli(SPEC, argv);
  } catch (e) {
    assert.instance(e, UsageError);
    return (e as Error).message;
  }
  return 'no error';
}

test('values are typed, defaulted and repeatable', () => {
  const v = parseCli(SPEC, ['--image', 'a.png', '--steps=7', '--lr', '-1e-3', '--data', 'p', '--data', 'q', '--fresh', '--']);
  assert.equal({ image: v.image, steps: v.steps, lr: v.lr, mode: v.mode, data: v.data, fresh: v.fresh }, { image: 'a.png', steps: 7, lr: -1e-3, mode: 'a', data: ['p', 'q'], fresh: true });
  assert.equal(parseCli(SPEC, ['--image', 'b', '--no-fresh']).data, ['x']);
});

test('bad flags and values are refused by name', () => {
  assert.is(usageError(['--image', 'a', '--stpes', '2']), 'unknown flag --stpes (did you mean --steps?)');
  assert.is(usageError(['--image', 'a', '--steps', 'abc']), '--steps expects a whole number, got "abc"');
  assert.is(usageError(['--image', 'a', '--steps', '2.5']), '--steps expects a whole number, got "2.5"');
  assert.is(usageError(['--image', 'a', '--steps', '0']), '--steps must be at least 1, got 0');
  assert.is(usageError(['--image', 'a', '--lr', '']), '--lr expects a number, got ""');
  assert.is(usageError(['--image', 'a', '--mode', 'alpah']), '--mode must be one of alpha, beta, a, got "alpah" (did you mean alpha?)');
  assert.is(usageError(['--steps', '2']), '--image is required (the image)');
  assert.is(usageError(['--image']), '--image needs a value <image>');
  assert.is(usageError(['--image', 'a', 'stray']), 'unexpected argument "stray" (this command takes flags only)');
  assert.is(usageError(['--image', 'a', '-x']), 'unknown flag -x (flags are written --name)');
  assert.is(usageError(['--image', 'a', '--fresh=yes']), '--fresh is a flag: write --fresh or --no-fresh, not --fresh=yes');
});

test('did-you-mean only suggests near names', () => {
  assert.is(didYouMean('wieghts', ['weights', 'out']), 'weights');
  assert.is(didYouMean('zzzzzz', ['weights', 'out']), null);
});

test('the help lists every option with its default', () => {
  const h = usageText(SPEC);
  assert.match(h, 'usage: npm run thing -- --image <image> [options]');
  assert.match(h, /--steps <n>\s+steps \(default: 3\)/);
  assert.match(h, /--mode <alpha\|beta\|a>/);
  assert.match(h, /--data <data>\s+data \(default: x\) \(repeatable\)/);
  assert.match(h, /--help\s+print this help and exit/);
});

function run(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], { encoding: 'utf8', env: { ...process.env, DPAD_BACKEND: process.env.DPAD_BACKEND ?? 'wasm', DPAD_DEBUG: '' } });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('every example CLI answers --help with a usage and exit 0', () => {
  for (const f of ['examples/segment.ts', 'examples/demo.ts', 'examples/eval.ts', 'examples/train.ts', 'examples/ablation.ts', 'tools/golden.ts']) {
    const r = run([f, '--help']);
    assert.is(r.code, 0, `${f} --help exited ${r.code}: ${r.out.slice(0, 300)}`);
    assert.match(r.out, 'usage: ', f);
  }
});

test('a missing image: exit 1, under 2 KB, naming the path', () => {
  const r = run(['examples/segment.ts', '--image', '/nonexistent/photo.png', '--query', 'the cat']);
  assert.is(r.code, 1, r.out.slice(0, 500));
  assert.ok(r.out.length < 2048, `${r.out.length} bytes of output`);
  assert.match(r.out, 'segment: error: /nonexistent/photo.png: image file not found');
});

test.run();
