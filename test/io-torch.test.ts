/**
 * .pt checkpoints that would otherwise lie (issue 20): forged storage offsets, views larger than
 * their storage, and objects that pass for tensors without a rebuild call are refused by name.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TorchCheckpoint } from '../src/io/torch.ts';
import { f32bytes, writePt } from './helpers/torchzip.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-pt-'));

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

const STORAGE = { '0': f32bytes([1, 2, 3, 4, 5, 6]) };

test("a storage offset of 'abc' or 0.5 is refused (it used to load as NaN)", () => {
  for (const [name, offset] of [['abc.pt', 'abc'], ['half.pt', 0.5]] as const) {
    const f = path.join(tmp, name);
    writePt(f, { w: { storage: 'FloatStorage', key: '0', offset, shape: [2, 2], stride: [1, 2], numel: 6 } }, STORAGE);
    assert.is(message(() => TorchCheckpoint.open(f)), `${f}: data.pkl: tensor storage offset is not an integer: ${JSON.stringify(offset)}`);
  }
});

test('a stride-0 view larger than its storage is refused before any allocation', () => {
  const f = path.join(tmp, 'expand.pt');
  writePt(f, { w: { storage: 'FloatStorage', key: '0', offset: 0, shape: [30000, 30000], stride: [0, 0], numel: 6 } }, STORAGE);
  assert.is(message(() => TorchCheckpoint.open(f)), `${f}: tensor 'w': view of size [30000,30000] has 900000000 elements but its storage data/0 holds 6`);
});

test('a legal stride-0 view within its storage still reads', () => {
  const f = path.join(tmp, 'bcast.pt');
  writePt(f, { w: { storage: 'FloatStorage', key: '0', offset: 1, shape: [2, 3], stride: [0, 1], numel: 6 } }, STORAGE);
  const ck = TorchCheckpoint.open(f);
  assert.equal(Array.from(ck.read('w').data), [2, 3, 4, 2, 3, 4]);
  ck.close();
});

test('an object that is not a rebuilt tensor cannot pass for one', () => {
  const f = path.join(tmp, 'forged.pt');
  writePt(f, { w: { storage: 'FloatStorage', key: '0', offset: 0, shape: [6], stride: [1], numel: 6 } }, STORAGE, { forgeParameter: true });
  assert.is(message(() => TorchCheckpoint.open(f)), `${f}: data.pkl: _rebuild_parameter of something that is not a rebuilt tensor`);
});

test.run();
