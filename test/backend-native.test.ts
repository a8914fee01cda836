import { backend } from './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs-core';
import { NATIVE_CROSSOVER_PARAMETERS, backendForPhase, parseChoice, wasmFasterFor } from '../src/backend.ts';
import { nativeCandidates, packageDir } from '../src/backend/native.ts';
import { extractZip, listZip, readZipEntry } from '../src/backend/zip.ts';
import { checkWheelName, cudaRequirements, parseArgs } from '../tools/setup-native.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-native-'));

/** A zip with one stored and one deflated entry (local headers + central directory + end record). */
function makeZip(file: string, entries: { name: string; data: Buffer; deflate: boolean; mode?: number }[]): void {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let off = 0;
  for (const e of entries) {
    const body = e.deflate ? zlib.deflateRawSync(e.data) : e.data;
    const name = Buffer.from(e.name);
    const crc = zlib.crc32(e.data) >>> 0;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt16LE(e.deflate ? 8 : 0, 8);
    lh.writeUInt32LE(crc, 14); lh.writeUInt32LE(body.length, 18); lh.writeUInt32LE(e.data.length, 22); lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(0x031e, 4); ch.writeUInt16LE(20, 6); ch.writeUInt16LE(e.deflate ? 8 : 0, 10);
    ch.writeUInt32LE(crc, 16); ch.writeUInt32LE(body.length, 20); ch.writeUInt32LE(e.data.length, 24); ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(((e.mode ?? 0o644) << 16) >>> 0, 38); ch.writeUInt32LE(off, 42);
    locals.push(lh, name, body);
    centrals.push(ch, name);
    off += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(off, 16);
  fs.writeFileSync(file, Buffer.concat([...locals, cd, end]));
}

test('zip reader: lists, reads and extracts stored and deflated entries, keeps the executable bit', async () => {
  const file = path.join(tmp, 'a.whl');
  const big = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251));
  makeZip(file, [
    { name: 'tensorflow/include/a.h', data: Buffer.from('#pragma once\n'), deflate: false },
    { name: 'tensorflow/libx.so.2', data: big, deflate: true, mode: 0o755 },
    { name: 'pkg.dist-info/METADATA', data: Buffer.from('Name: x\n'), deflate: true },
  ]);
  const entries = listZip(file);
  assert.equal(entries.map(e => e.name), ['tensorflow/include/a.h', 'tensorflow/libx.so.2', 'pkg.dist-info/METADATA']);
  assert.is(readZipEntry(file, entries[2]).toString(), 'Name: x\n');
  const out = path.join(tmp, 'out');
  const n = await extractZip(file, entries, name => (name.startsWith('tensorflow/') ? path.join(out, name) : null));
  assert.is(n, 2);
  assert.ok(fs.readFileSync(path.join(out, 'tensorflow/libx.so.2')).equals(big));
  assert.is(fs.statSync(path.join(out, 'tensorflow/libx.so.2')).mode & 0o111, 0o111);
  assert.is(fs.readFileSync(path.join(out, 'tensorflow/include/a.h'), 'utf8'), '#pragma once\n');
});

test('zip reader: a corrupted entry and a non-zip file are named', async () => {
  const file = path.join(tmp, 'bad.whl');
  makeZip(file, [{ name: 'x.txt', data: Buffer.from('hello world, hello world'), deflate: false }]);
  const b = fs.readFileSync(file);
  b[30 + 'x.txt'.length] ^= 0xff; // first data byte
  fs.writeFileSync(file, b);
  const e = listZip(file);
  assert.throws(() => readZipEntry(file, e[0]), (err: Error) => err.message === `${file}: zip entry 'x.txt': CRC or size mismatch (corrupt)`);
  const notZip = path.join(tmp, 'no.whl');
  fs.writeFileSync(notZip, 'not a zip at all, just text');
  assert.throws(() => listZip(notZip), (err: Error) => err.message === `${notZip}: not a zip archive, or truncated: no end-of-central-directory record`);
});

test('setup:native arguments: --help, paths, and bad combinations name the fault', () => {
  assert.is(parseArgs(['--help']), 'help');
  const o = parseArgs(['--', '--wheel', 'w.whl', '--gpu']);
  assert.ok(o !== 'help' && o.gpu && o.wheel === path.resolve('w.whl') && o.libtensorflow === null);
  assert.throws(() => parseArgs(['--wheel']), (e: Error) => e.message === 'setup:native: bad arguments: --wheel needs a path');
  assert.throws(() => parseArgs(['--fast']), (e: Error) => e.message === 'setup:native: bad arguments: unknown option --fast (see --help)');
  assert.throws(() => parseArgs(['--wheel', 'a.whl', '--libtensorflow', 'd']), (e: Error) => e.message === 'setup:native: bad arguments: --wheel and --libtensorflow exclude each other');
});

test('setup:native wheel checks: wrong wheels are named with the reason', () => {
  checkWheelName('/w/tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl', 'cpu');
  checkWheelName('/w/tensorflow-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl', 'gpu');
  assert.throws(() => checkWheelName('/w/tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl', 'gpu'),
    (e: Error) => e.message === 'setup:native: wrong wheel: tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl is tensorflow_cpu, expected tensorflow (tensorflow-cpu has no CUDA)');
  assert.throws(() => checkWheelName('/w/tensorflow-2.21.0-cp311-cp311-macosx_12_0_arm64.whl', 'cpu'),
    (e: Error) => e.message === 'setup:native: wrong wheel: tensorflow-2.21.0-cp311-cp311-macosx_12_0_arm64.whl is for macosx_12_0_arm64, this needs a linux x86_64 wheel');
  assert.throws(() => checkWheelName('/w/numpy-2.0.0-cp311-cp311-manylinux_2_27_x86_64.whl', 'cpu'),
    (e: Error) => e.message === 'setup:native: wrong wheel: numpy-2.0.0-cp311-cp311-manylinux_2_27_x86_64.whl is numpy, expected tensorflow_cpu or tensorflow');
  assert.throws(() => checkWheelName('/w/libtensorflow.tar.gz', 'cpu'),
    (e: Error) => e.message === 'setup:native: wrong wheel: /w/libtensorflow.tar.gz: not a wheel file name (name-version-python-abi-platform.whl)');
});

test('the and-cuda requirements are read from the wheel metadata', () => {
  const meta = 'Name: tensorflow\nRequires-Dist: numpy>=1.26.0\nRequires-Dist: nvidia-cublas-cu12<13.0,>=12.5.3.2; extra == "and-cuda"\nRequires-Dist: nvidia-cudnn-cu12 <10.0,>=9.3.0.75 ; extra == "and-cuda"\nRequires-Dist: tensorflow-io; extra == "gcs"\n';
  assert.equal(cudaRequirements(meta), ['nvidia-cublas-cu12<13.0,>=12.5.3.2', 'nvidia-cudnn-cu12<10.0,>=9.3.0.75']);
});

test('backend choice: unknown DPAD_BACKEND is named; the native candidates come from .native/ then node_modules', () => {
  assert.is(parseChoice(' Auto '), 'auto');
  assert.throws(() => parseChoice('gpu'), (e: Error) => e.message === 'DPAD_BACKEND=gpu: expected one of auto, tensorflow, wasm, cpu');
  const none = nativeCandidates(path.join(tmp, 'empty-native'));
  assert.equal(none.map(c => c.entry), ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
  assert.is(packageDir('gpu', '/n'), '/n/gpu/tfjs-node-gpu');
});

test('the measured crossovers: training and encoding stay native, small or batch-1 decoding goes to wasm', () => {
  assert.is(wasmFasterFor({ parameters: 1e6, phase: 'train' }), false);
  assert.is(wasmFasterFor({ parameters: 1e6, phase: 'encode' }), false);
  assert.is(wasmFasterFor({ parameters: 1.2e6, phase: 'decode', batch: 4 }), true);
  assert.is(wasmFasterFor({ parameters: 50e6, phase: 'decode', batch: 16 }), false);
  assert.is(wasmFasterFor({ parameters: 387e6, phase: 'decode' }), true);
  assert.is(wasmFasterFor({ parameters: 3e9, phase: 'decode' }), false);
  assert.is(wasmFasterFor({ parameters: 1.2e6 }), true);
  assert.is(wasmFasterFor({ parameters: NATIVE_CROSSOVER_PARAMETERS }), false);
  // on a wasm or cpu process every phase stays where it is
  if (backend.name !== 'tensorflow') assert.is(backendForPhase({ parameters: 1e9, phase: 'train' }), backend.name);
  else assert.is(backendForPhase({ parameters: 1e6, phase: 'decode', batch: 4 }), backend.native?.variant === 'gpu' ? 'tensorflow' : 'wasm');
});

test('on the native backend: no wasm kernel machinery, TensorFlow version known, numerics match cpu', () => {
  if (backend.name !== 'tensorflow') return;
  assert.equal(backend.bridged, []);
  assert.ok(backend.native && /^\d+\.\d+/.test(backend.native.tfVersion), JSON.stringify(backend.native));
  const a = tf.randomNormal([3, 64, 48], 0, 1, 'float32', 3);
  const b = tf.randomNormal([3, 48, 32], 0, 1, 'float32', 4);
  const got = tf.matMul(a, b).dataSync();
  tf.setBackend('cpu');
  const want = tf.matMul(a, b).dataSync();
  tf.setBackend('tensorflow');
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  assert.ok(err < 1e-4, `max error ${err}`);
  tf.dispose([a, b]);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
