/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{ key: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {...} }`, then the data.
 * The header is read and checked against the file size first; tensors are read on demand.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DTYPE_BYTES, decode, encode, isStorageDtype, numel, type RawTensor, type StorageDtype } from './dtypes.ts';
import { FormatError, WeightError } from './errors.ts';
import { writeStreamAtomic } from './atomic.ts';
import type { TensorMeta, TensorSource } from './source.ts';

/** Headers above this are refused before anything else is read (the reference reader uses 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface Entry extends TensorMeta {
  begin: number;
  end: number;
}

/**
 * The first key that appears twice among the top-level keys of a JSON object text, or null.
 * `text` is valid JSON (already parsed); this walks it once, tracking depth and strings.
 */
export function firstDuplicateKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
    i++;
  }
  return null;
}

export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private readonly entries = new Map<string, Entry>();
  private fd: number | null;
  private readonly dataStart: number;

  private constructor(file: string, fd: number) {
    this.path = file;
    this.fd = fd;
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new FormatError(file, `not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(size - 8)) throw new FormatError(file, `header length ${n} exceeds the file (${size} bytes): truncated or not safetensors`);
    if (n > BigInt(MAX_HEADER_BYTES)) throw new FormatError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const hlen = Number(n);
    const hbuf = Buffer.alloc(hlen);
    fs.readSync(fd, hbuf, 0, hlen, 8);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(hbuf);
    } catch {
      throw new FormatError(file, 'header is not valid UTF-8');
    }
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (e) {
      throw new FormatError(file, `header is not valid JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new FormatError(file, 'header is not a JSON object');
    // JSON.parse keeps the last of repeated keys; the reference reader refuses the file
    const dup = firstDuplicateKey(text);
    if (dup !== null) throw new WeightError(file, dup, 'appears twice in the header');
    this.dataStart = 8 + hlen;
    const dataSize = size - this.dataStart;
    const meta = (header as Record<string, unknown>).__metadata__;
    this.metadata = meta && typeof meta === 'object' ? (meta as Record<string, string>) : {};
    const spans: [number, number, string][] = [];
    for (const [key, v] of Object.entries(header as Record<string, unknown>)) {
      if (key === '__metadata__') continue;
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!e || typeof e !== 'object') throw new WeightError(file, key, 'header entry is not an object');
      if (!isStorageDtype(e.dtype)) throw new WeightError(file, key, `unknown dtype ${JSON.stringify(e.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every(d => Number.isSafeInteger(d) && d >= 0)) {
        throw new WeightError(file, key, `bad shape ${JSON.stringify(e.shape)}`);
      }
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every(d => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) {
        throw new WeightError(file, key, `bad data_offsets ${JSON.stringify(off)}`);
      }
      const shape = e.shape as number[];
      const want = numel(shape) * DTYPE_BYTES[e.dtype];
      if (off[1] - off[0] !== want) {
        throw new WeightError(file, key, `data_offsets span ${off[1] - off[0]} bytes but ${e.dtype}${JSON.stringify(shape)} needs ${want}`);
      }
      if (off[1] > dataSize) {
        throw new WeightError(file, key, `data ends at byte ${off[1]} but the file holds ${dataSize} data bytes: truncated`);
      }
      this.entries.set(key, { dtype: e.dtype, shape, begin: off[0], end: off[1] });
      spans.push([off[0], off[1], key]);
    }
    // As the reference reader validates: sorted by offset, the tensors tile the data exactly,
    // with no overlap, no gap and no trailing bytes.
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let end = 0;
    for (let i = 0; i < spans.length; i++) {
      const [b, e, key] = spans[i];
      if (b < end) throw new WeightError(file, key, `data overlaps tensor '${spans[i - 1][2]}'`);
      if (b > end) throw new WeightError(file, key, `data starts at byte ${b} but the previous tensor ends at ${end}: a gap of ${b - end} bytes`);
      end = e;
    }
    if (end !== dataSize) throw new FormatError(file, `${dataSize - end} bytes after the last tensor (data holds ${dataSize} bytes, tensors ${end})`);
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new FormatError(file, `cannot open (${(e as Error).message})`);
    }
    try {
      return new SafetensorsFile(file, fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  meta(key: string): TensorMeta {
    const e = this.entries.get(key);
    if (!e) throw new WeightError(this.path, key, 'no such tensor in the file');
    return { dtype: e.dtype, shape: e.shape.slice() };
  }

  /** The raw little-endian bytes of one tensor. */
  bytes(key: string): Uint8Array {
    const e = this.entries.get(key);
    if (!e) throw new WeightError(this.path, key, 'no such tensor in the file');
    if (this.fd === null) throw new WeightError(this.path, key, 'file is closed');
    const buf = Buffer.alloc(e.end - e.begin);
    const got = fs.readSync(this.fd, buf, 0, buf.length, this.dataStart + e.begin);
    if (got !== buf.length) throw new WeightError(this.path, key, `read ${got} of ${buf.length} bytes: truncated`);
    return buf;
  }

  read(key: string): RawTensor {
    const e = this.entries.get(key);
    if (!e) throw new WeightError(this.path, key, 'no such tensor in the file');
    const data = decode(this.bytes(key), e.dtype, numel(e.shape), () => `${this.path}: tensor '${key}'`);
    return { dtype: e.dtype, shape: e.shape.slice(), data };
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * A tensor to write: a tfjs tensor (its dtype decides F32/I32/BOOL unless `dtype` says), values,
 * or already-encoded bytes produced on demand (so a converter holds one tensor at a time).
 */
export type WritableTensor =
  | tf.Tensor
  | { dtype: StorageDtype; shape: number[]; data: ArrayLike<number> }
  | { dtype: StorageDtype; shape: number[]; bytes: () => Uint8Array };

function defaultDtype(t: tf.Tensor): StorageDtype {
  if (t.dtype === 'float32') return 'F32';
  if (t.dtype === 'int32') return 'I32';
  if (t.dtype === 'bool') return 'BOOL';
  throw new Error(`safetensors: cannot write a ${t.dtype} tensor`);
}

/**
 * Write tensors to `file` atomically (temp file + rename). Keys are sorted as the reference
 * writer does; data is 8-byte aligned through header padding.
 */
export function writeSafetensors(
  file: string,
  tensors: Map<string, WritableTensor> | Record<string, WritableTensor>,
  opts: { metadata?: Record<string, string>; dtype?: StorageDtype } = {},
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const plan: { key: string; dtype: StorageDtype; shape: number[]; get: () => ArrayLike<number>; raw?: () => Uint8Array }[] = [];
  let offset = 0;
  for (const [key, t] of entries) {
    let dtype: StorageDtype;
    let shape: number[];
    let get: () => ArrayLike<number> = () => [];
    let raw: (() => Uint8Array) | undefined;
    if (t instanceof tf.Tensor) {
      dtype = t.dtype === 'float32' && opts.dtype ? opts.dtype : defaultDtype(t);
      shape = t.shape.slice();
      get = () => t.dataSync() as ArrayLike<number>;
    } else if ('bytes' in t) {
      dtype = t.dtype;
      shape = t.shape.slice();
      const want = numel(shape) * DTYPE_BYTES[dtype];
      raw = () => {
        const b = t.bytes();
        if (b.byteLength !== want) throw new WeightError(file, key, `${b.byteLength} bytes for ${dtype}${JSON.stringify(shape)} (need ${want})`);
        return b;
      };
    } else {
      dtype = t.dtype;
      shape = t.shape.slice();
      const data = t.data;
      if (data.length !== numel(shape)) throw new WeightError(file, key, `${data.length} values for shape ${JSON.stringify(shape)}`);
      get = () => data;
    }
    const bytes = numel(shape) * DTYPE_BYTES[dtype];
    header[key] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    plan.push({ key, dtype, shape, get, raw });
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const hbytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbytes.length));
  writeStreamAtomic(file, append => {
    append(len);
    append(hbytes);
    for (const p of plan) append(p.raw ? p.raw() : encode(p.get(), p.dtype));
  });
}

/**
 * A sharded checkpoint: `model.safetensors.index.json` with `weight_map: { key: shard }`.
 * Shards are opened lazily, so a converter can walk them one at a time.
 */
export class ShardedSafetensors implements TensorSource {
  readonly path: string;
  private readonly weightMap: Map<string, string>;
  private readonly open = new Map<string, SafetensorsFile>();
  private readonly dir: string;

  constructor(indexFile: string) {
    this.path = indexFile;
    this.dir = path.dirname(indexFile);
    let idx: { weight_map?: Record<string, string> };
    try {
      idx = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    } catch (e) {
      throw new FormatError(indexFile, `cannot read the shard index (${(e as Error).message})`);
    }
    if (!idx || typeof idx.weight_map !== 'object' || idx.weight_map === null) throw new FormatError(indexFile, "no 'weight_map' object");
    this.weightMap = new Map(Object.entries(idx.weight_map));
    for (const [k, shard] of this.weightMap) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
        throw new WeightError(indexFile, k, `bad shard name ${JSON.stringify(shard)}`);
      }
    }
  }

  /** shard file names in index order */
  shards(): string[] {
    return [...new Set(this.weightMap.values())];
  }

  /** keys stored in one shard */
  keysOf(shard: string): string[] {
    return [...this.weightMap].filter(([, s]) => s === shard).map(([k]) => k);
  }

  shard(name: string): SafetensorsFile {
    let f = this.open.get(name);
    if (!f) {
      f = SafetensorsFile.open(path.join(this.dir, name));
      this.open.set(name, f);
    }
    return f;
  }

  /** close one shard's file (a streaming converter calls this after each shard) */
  release(name: string): void {
    this.open.get(name)?.close();
    this.open.delete(name);
  }

  private fileOf(key: string): SafetensorsFile {
    const s = this.weightMap.get(key);
    if (s === undefined) throw new WeightError(this.path, key, 'not in the weight_map');
    const f = this.shard(s);
    if (!f.has(key)) throw new WeightError(f.path, key, `the index places it in ${s} but that shard does not hold it`);
    return f;
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }
  has(key: string): boolean {
    return this.weightMap.has(key);
  }
  meta(key: string): TensorMeta {
    return this.fileOf(key).meta(key);
  }
  read(key: string): RawTensor {
    return this.fileOf(key).read(key);
  }
  close(): void {
    for (const f of this.open.values()) f.close();
    this.open.clear();
  }
}
