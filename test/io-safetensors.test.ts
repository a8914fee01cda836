/**
 * Safetensors files that would otherwise lie (issue 20): duplicate keys, gaps, trailing bytes and
 * non-UTF-8 headers are refused, as the reference reader refuses them, with the file and key named.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile, firstDuplicateKey, writeSafetensors } from '../src/io/safetensors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-st-'));

/** a file from a header text and a data length (zero bytes) */
function raw(name: string, header: string | Buffer, dataBytes: number): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const f = path.join(tmp, name);
  fs.writeFileSync(f, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
  return f;
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

test('a key that appears twice is refused (JSON.parse would keep the last)', () => {
  const f = raw('dup.safetensors', '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', 8);
  assert.is(message(() => SafetensorsFile.open(f)), `${f}: tensor 'w': appears twice in the header`);
});

test('a gap between tensors is refused', () => {
  const f = raw('gap.safetensors', '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}', 12);
  assert.is(message(() => SafetensorsFile.open(f)), `${f}: tensor 'b': data starts at byte 8 but the previous tensor ends at 4: a gap of 4 bytes`);
});

test('bytes after the last tensor are refused', () => {
  const f = raw('trail.safetensors', '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 7);
  assert.is(message(() => SafetensorsFile.open(f)), `${f}: 3 bytes after the last tensor (data holds 7 bytes, tensors 4)`);
});

test('a header that is not UTF-8 is refused', () => {
  const h = Buffer.concat([Buffer.from('{"a'), Buffer.from([0xff, 0xfe]), Buffer.from('": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}')]);
  const f = raw('utf8.safetensors', h, 4);
  assert.is(message(() => SafetensorsFile.open(f)), `${f}: header is not valid UTF-8`);
});

test('files the writer makes still open: padding, metadata, empty tensors, keys with escapes', () => {
  const f = path.join(tmp, 'ok.safetensors');
  writeSafetensors(f, { 'a"b\\c': { dtype: 'F32', shape: [2], data: [1, 2] }, empty: { dtype: 'F32', shape: [0], data: [] }, z: { dtype: 'U8', shape: [3], data: [1, 2, 3] } }, { metadata: { format: 'pt' } });
  const st = SafetensorsFile.open(f);
  assert.equal(st.keys().sort(), ['a"b\\c', 'empty', 'z']);
  assert.equal(Array.from(st.read('z').data), [1, 2, 3]);
  st.close();
});

test('firstDuplicateKey looks at top-level keys only', () => {
  assert.is(firstDuplicateKey('{"a": {"x": 1, "x": 2}, "b": "a"}'), null);
  assert.is(firstDuplicateKey('{"a": [1, {"a": 1}], "b": 1, "a": 2}'), 'a');
  assert.is(firstDuplicateKey('{"k\\"": 1, "k\\"": 2}'), 'k"');
});

test.run();
