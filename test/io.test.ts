import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile, ShardedSafetensors, writeSafetensors } from '../src/io/safetensors.ts';
import { TorchCheckpoint } from '../src/io/torch.ts';
import { openCheckpoint } from '../src/io/checkpoint.ts';
import { f32ToF16Bits, type StorageDtype } from '../src/io/dtypes.ts';
import { FIXTURES } from './helpers/setup.ts';
import { f32bytes, writePt } from './helpers/torchzip.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-io-'));

function throwsWith(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected an error matching ${re}`);
}

const CASES: [StorageDtype, number[], number[]][] = [
  ['F64', [1.5, -2.25, 1e-30], [1.5, -2.25, Math.fround(1e-30)]],
  ['F32', [0.1, -3, 65504.5], [Math.fround(0.1), -3, 65504.5]],
  ['F16', [1, -2.5, 0.1, 65504, 6e-8], [1, -2.5, 0.0999755859375, 65504, 5.960464477539063e-8]],
  ['BF16', [1, -2.5, 0.1, 3e38], [1, -2.5, 0.10009765625, 3.00405527047391e38]],
  ['I64', [0, -1, 2147483647, -2147483648], [0, -1, 2147483647, -2147483648]],
  ['I32', [7, -7, 123456789], [7, -7, 123456789]],
  ['I16', [-32768, 32767, 5], [-32768, 32767, 5]],
  ['I8', [-128, 127, 0], [-128, 127, 0]],
  ['U8', [0, 255, 17], [0, 255, 17]],
  ['U16', [0, 65535, 300], [0, 65535, 300]],
  ['BOOL', [1, 0, 1], [1, 0, 1]],
];

test('safetensors round-trip decodes every dtype to the expected values', () => {
  const f = path.join(tmp, 'all.safetensors');
  const tensors: Record<string, { dtype: StorageDtype; shape: number[]; data: number[] }> = {};
  for (const [dt, vals] of CASES) tensors[`t_${dt}`] = { dtype: dt, shape: [vals.length], data: vals };
  writeSafetensors(f, tensors, { metadata: { format: 'pt' } });
  const st = SafetensorsFile.open(f);
  assert.equal(st.metadata, { format: 'pt' });
  for (const [dt, , want] of CASES) {
    const r = st.read(`t_${dt}`);
    assert.is(r.dtype, dt);
    assert.equal(r.shape, [want.length]);
    for (let i = 0; i < want.length; i++) {
      const got = r.data[i];
      if (dt === 'BF16') assert.ok(Math.abs(got - want[i]) <= Math.abs(want[i]) * 1e-7, `${dt}[${i}] ${got} vs ${want[i]}`);
      else assert.is(got, want[i], `${dt}[${i}]`);
    }
  }
  st.close();
});

test('f16 encoding rounds to nearest even and saturates to infinity', () => {
  assert.is(f32ToF16Bits(1), 0x3c00);
  assert.is(f32ToF16Bits(-2), 0xc000);
  assert.is(f32ToF16Bits(65520), 0x7c00);
  assert.is(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie -> even
  assert.is(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
});

test('safetensors header that lies about sizes is refused with the tensor key', () => {
  const f = path.join(tmp, 'lie.safetensors');
  const header = JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 12] } });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(f, Buffer.concat([len, Buffer.from(header), Buffer.alloc(16)]));
  throwsWith(() => SafetensorsFile.open(f), /lie\.safetensors: tensor 'w': data_offsets span 12 bytes but F32\[4\] needs 16/);
});

test('truncated safetensors files are refused, naming file and tensor', () => {
  const good = path.join(tmp, 'good.safetensors');
  writeSafetensors(good, { a: { dtype: 'F32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, b: { dtype: 'F32', shape: [100], data: new Array(100).fill(1) } });
  const bytes = fs.readFileSync(good);
  const cut = path.join(tmp, 'cut.safetensors');
  fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
  throwsWith(() => SafetensorsFile.open(cut), /cut\.safetensors: tensor '(a|b)': data ends at byte \d+ but the file holds \d+ data bytes: truncated/);
  const tiny = path.join(tmp, 'tiny.safetensors');
  fs.writeFileSync(tiny, bytes.subarray(0, 5));
  throwsWith(() => SafetensorsFile.open(tiny), /tiny\.safetensors: not a safetensors file: 5 bytes/);
  const nohead = path.join(tmp, 'nohead.safetensors');
  fs.writeFileSync(nohead, bytes.subarray(0, 20));
  throwsWith(() => SafetensorsFile.open(nohead), /nohead\.safetensors: header length \d+ exceeds the file \(20 bytes\)/);
});

test('unknown dtype and bad JSON header are clear errors', () => {
  const f = path.join(tmp, 'dt.safetensors');
  const header = JSON.stringify({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(f, Buffer.concat([len, Buffer.from(header), Buffer.alloc(1)]));
  throwsWith(() => SafetensorsFile.open(f), /dt\.safetensors: tensor 'w': unknown dtype "F8_E4M3"/);
  const g = path.join(tmp, 'json.safetensors');
  len.writeBigUInt64LE(5n);
  fs.writeFileSync(g, Buffer.concat([len, Buffer.from('{nope'), Buffer.alloc(4)]));
  throwsWith(() => SafetensorsFile.open(g), /json\.safetensors: header is not valid JSON/);
});

test('sharded checkpoints resolve keys through the index and report a lying index', () => {
  const dir = path.join(tmp, 'sharded');
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), { a: { dtype: 'F32', shape: [2], data: [1, 2] } });
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), { b: { dtype: 'I32', shape: [1], data: [9] } });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' } }));
  const src = openCheckpoint(dir) as ShardedSafetensors;
  assert.equal(src.shards(), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  assert.equal(Array.from(src.read('a').data), [1, 2]);
  assert.equal(Array.from(src.read('b').data), [9]);
  throwsWith(() => src.read('c'), /tensor 'c': the index places it in model-00002-of-00002\.safetensors but that shard does not hold it/);
  src.close();
});

test('.pt reader follows offset and strides (non-contiguous views) and decodes F16 storages', () => {
  const f = path.join(tmp, 'hand.pt');
  const half = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800]).buffer);
  writePt(f, {
    w: { storage: 'FloatStorage', key: '0', offset: 0, shape: [2, 3], stride: [3, 1], numel: 6 },
    wt: { storage: 'FloatStorage', key: '0', offset: 0, shape: [3, 2], stride: [1, 3], numel: 6 },
    tail: { storage: 'FloatStorage', key: '0', offset: 4, shape: [2], stride: [1], numel: 6 },
    h: { storage: 'HalfStorage', key: '1', offset: 0, shape: [3], stride: [1], numel: 3 },
  }, { '0': f32bytes([1, 2, 3, 4, 5, 6]), '1': half }, { wrapModel: true });
  const ck = TorchCheckpoint.open(f);
  assert.equal(ck.keys(), ['w', 'wt', 'tail', 'h']);
  assert.equal(Array.from(ck.read('w').data), [1, 2, 3, 4, 5, 6]);
  assert.equal(Array.from(ck.read('wt').data), [1, 4, 2, 5, 3, 6]);
  assert.equal(Array.from(ck.read('tail').data), [5, 6]);
  assert.equal(Array.from(ck.read('h').data), [1, -2, 0.5]);
  assert.equal(ck.meta('wt'), { dtype: 'F32', shape: [3, 2] });
  ck.close();
});

test('.pt with a global outside the allowlist is refused before anything runs', () => {
  const f = path.join(tmp, 'evil.pt');
  writePt(f, { w: { storage: 'FloatStorage', key: '0', offset: 0, shape: [1], stride: [1], numel: 1 } }, { '0': f32bytes([1]) }, { extraGlobal: ['os', 'system'] });
  throwsWith(() => TorchCheckpoint.open(f), /evil\.pt: data\.pkl refers to 'os\.system', which is not on the allowlist/);
});

test('.pt whose view reaches past its storage, or that is truncated, is refused', () => {
  const f = path.join(tmp, 'short.pt');
  writePt(f, { w: { storage: 'FloatStorage', key: '0', offset: 2, shape: [4], stride: [1], numel: 4 } }, { '0': f32bytes([1, 2, 3, 4]) });
  throwsWith(() => TorchCheckpoint.open(f), /short\.pt: tensor 'w': view \(offset 2, size \[4\], stride \[1\]\) reaches element 5 of a 4-element storage/);
  const g = path.join(tmp, 'trunc.pt');
  writePt(g, { w: { storage: 'FloatStorage', key: '0', offset: 0, shape: [4], stride: [1], numel: 4 } }, { '0': f32bytes([1, 2, 3, 4]) });
  const b = fs.readFileSync(g);
  fs.writeFileSync(g, b.subarray(0, b.length - 30));
  throwsWith(() => TorchCheckpoint.open(g), /trunc\.pt: not a zip-format torch checkpoint \(legacy torch\.save format, or truncated\)/);
});

test('the SAM2 fixture .pt loads every tensor with the shapes of its pickle', () => {
  const f = path.join(FIXTURES, 'sam2-tiny-pt', 'weights.pt');
  const ck = TorchCheckpoint.open(f);
  const keys = ck.keys();
  assert.ok(keys.length > 300, `${keys.length} tensors`);
  assert.ok(keys.includes('image_encoder.trunk.patch_embed.proj.weight'));
  let n = 0;
  for (const k of keys) {
    const r = ck.read(k);
    const want = r.shape.reduce((a, b) => a * b, 1);
    assert.is(r.data.length, want, k);
    for (const v of r.data) if (!Number.isFinite(v)) assert.unreachable(`${k} has a non-finite value`);
    n += want;
  }
  assert.ok(n > 100000);
  ck.close();
});

test.run();
