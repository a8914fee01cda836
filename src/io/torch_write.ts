/**
 * A streaming writer of torch.save's zip format (torch >= 1.6), the inverse of torch.ts:
 * `<root>/data.pkl` (a protocol-2 pickle of the object, every tensor a `_rebuild_tensor_v2` call
 * whose persistent id names a storage), `<root>/byteorder`, `<root>/data/<n>` (one stored,
 * uncompressed entry per storage, data 64-byte aligned as torch aligns it) and `<root>/version`.
 *
 * The pickle is written as CPython's pickler writes it for torch.save (memo puts and gets,
 * TUPLE1-3, SETITEMS batches of 1000). Tensor bytes are produced on demand, one tensor at a time,
 * so a checkpoint of any size is written with one tensor in memory. Offsets or sizes past 4 GiB
 * switch the archive to zip64 (the reader in zip.ts reads both).
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { writeStreamAtomic } from './atomic.ts';
import { DTYPE_BYTES, numel, type StorageDtype } from './dtypes.ts';
import { WeightError } from './errors.ts';

/** A tensor to save: contiguous, its own storage; `bytes` gives its little-endian data on demand. */
export interface TorchWriteTensor {
  dtype: StorageDtype;
  shape: number[];
  bytes: () => Uint8Array;
}

export interface TorchWriteOptions {
  /** wrap the state dict as `{wrap: state_dict}` (SAM2's checkpoints use 'model'); null: the bare OrderedDict */
  wrap?: string | null;
  /**
   * the archive's root folder; default 'archive', what torch.save writes through a file object
   * (as SAM2's trainer saves, via iopath); torch.save(obj, path) uses the file's stem instead
   */
  root?: string;
  /** give the OrderedDict state_dict()'s `_metadata` (module versions), as real checkpoints have (default true) */
  moduleMetadata?: boolean;
  /** write zip64 records for every entry even below 4 GiB (for tests of the zip64 path) */
  forceZip64?: boolean;
}

const STORAGE_CLASS: Record<StorageDtype, string> = {
  F32: 'FloatStorage', F64: 'DoubleStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', I64: 'LongStorage',
  I32: 'IntStorage', I16: 'ShortStorage', I8: 'CharStorage', U8: 'ByteStorage', BOOL: 'BoolStorage', U16: '',
};

/** CPython's pickle.Pickler._BATCHSIZE */
const BATCH = 1000;

/** The opcodes of protocol 2 that torch.save's pickles use. */
class Pickler {
  private readonly out: number[] = [];
  private memoNext = 0;
  private readonly memo = new Map<string, number>();

  op(...b: number[]): void {
    for (const x of b) this.out.push(x);
  }
  private u32(n: number): void {
    this.op(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255);
  }
  /** BINPUT / LONG_BINPUT the object just written; `id` lets later writes BINGET it */
  put(id?: string): void {
    const i = this.memoNext++;
    if (i < 256) this.op(0x71, i);
    else { this.op(0x72); this.u32(i); }
    if (id !== undefined) this.memo.set(id, i);
  }
  /** BINGET / LONG_BINGET a memoized object; false when it was not written yet */
  get(id: string): boolean {
    const i = this.memo.get(id);
    if (i === undefined) return false;
    if (i < 256) this.op(0x68, i);
    else { this.op(0x6a); this.u32(i); }
    return true;
  }
  /** a str: BINUNICODE + put; `shared` strings (one Python object reused) are memoized by value */
  str(s: string, shared = false): void {
    if (shared && this.get(`s:${s}`)) return;
    const u = Buffer.from(s, 'utf8');
    this.op(0x58);
    this.u32(u.length);
    for (const b of u) this.out.push(b);
    this.put(shared ? `s:${s}` : undefined);
  }
  int(n: number): void {
    if (!Number.isSafeInteger(n)) throw new Error(`pickle: ${n} is not an integer`);
    if (n >= 0 && n < 256) this.op(0x4b, n); // BININT1
    else if (n >= 0 && n < 65536) this.op(0x4d, n & 255, n >>> 8); // BININT2
    else if (n >= -0x80000000 && n <= 0x7fffffff) { this.op(0x4a); this.u32(n); } // BININT
    else {
      // LONG1: little-endian two's complement, as few bytes as hold the sign
      const bytes: number[] = [];
      let v = BigInt(n);
      do {
        bytes.push(Number(v & 255n));
        v >>= 8n;
      } while (!((v === 0n && bytes[bytes.length - 1] < 128) || (v === -1n && bytes[bytes.length - 1] >= 128)));
      this.op(0x8a, bytes.length, ...bytes);
    }
  }
  /** GLOBAL module\nname\n, memoized: a second use is a BINGET */
  global(module: string, name: string): void {
    if (this.get(`g:${module}.${name}`)) return;
    this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'utf8'));
    this.put(`g:${module}.${name}`);
  }
  /** a tuple of ints: EMPTY_TUPLE, TUPLE1-3, or MARK ... TUPLE, then put (the empty tuple is not memoized) */
  intTuple(xs: readonly number[]): void {
    if (xs.length === 0) { this.op(0x29); return; }
    if (xs.length > 3) this.op(0x28);
    for (const x of xs) this.int(x);
    this.op(xs.length === 1 ? 0x85 : xs.length === 2 ? 0x86 : xs.length === 3 ? 0x87 : 0x74);
    this.put();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/**
 * The pickle of `{wrap: OrderedDict(name -> tensor)}` (or the bare OrderedDict); storage i is
 * tensor i; with `moduleMetadata`, the OrderedDict carries state_dict()'s `_metadata` as torch's does.
 */
export function pickleStateDict(tensors: readonly [string, { dtype: StorageDtype; shape: number[] }][], wrap: string | null = 'model', moduleMetadata = true): Uint8Array {
  const p = new Pickler();
  p.op(0x80, 2); // PROTO 2
  if (wrap !== null) {
    p.op(0x7d); // EMPTY_DICT
    p.put();
    p.str(wrap);
  }
  p.global('collections', 'OrderedDict');
  p.op(0x29, 0x52); // EMPTY_TUPLE, REDUCE: OrderedDict()
  p.put();
  tensors.forEach(([name, t], i) => {
    if (i % BATCH === 0 && tensors.length - i > 1) p.op(0x28); // MARK of a SETITEMS batch
    const cls = STORAGE_CLASS[t.dtype];
    if (!cls) throw new WeightError('pickle', name, `torch has no storage for ${t.dtype}`);
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.op(0x28); // MARK: (storage, storage_offset, size, stride, requires_grad, backward_hooks)
    p.op(0x28); // MARK: the persistent id ('storage', cls, key, location, numel)
    p.str('storage', true);
    p.global('torch', cls);
    p.str(String(i));
    p.str('cpu', true);
    p.int(numel(t.shape));
    p.op(0x74); // TUPLE
    p.put();
    p.op(0x51); // BINPERSID
    p.int(0);
    p.intTuple(t.shape);
    const stride = t.shape.map((_, d) => numel(t.shape.slice(d + 1)));
    p.intTuple(stride);
    p.op(0x89); // NEWFALSE: requires_grad
    p.global('collections', 'OrderedDict');
    p.op(0x29, 0x52); // backward_hooks = OrderedDict()
    p.put();
    p.op(0x74); // TUPLE
    p.put();
    p.op(0x52); // REDUCE
    p.put();
    const end = Math.min(tensors.length, (Math.floor(i / BATCH) + 1) * BATCH);
    if (i === end - 1) p.op(end - Math.floor(i / BATCH) * BATCH > 1 ? 0x75 : 0x73); // SETITEMS, or SETITEM for a batch of one
  });
  if (moduleMetadata) {
    // state_dict()'s `_metadata` (module prefix -> {'version': 1}), restored by BUILD: here the
    // modules that hold tensors and their ancestors, in pre-order (torch also lists modules
    // without parameters, e.g. activations)
    const prefixes: string[] = [''];
    const seenPrefix = new Set(prefixes);
    for (const [name] of tensors) {
      const parts = name.split('.');
      for (let i = 1; i < parts.length; i++) {
        const q = parts.slice(0, i).join('.');
        if (!seenPrefix.has(q)) { seenPrefix.add(q); prefixes.push(q); }
      }
    }
    p.op(0x7d); // EMPTY_DICT: the OrderedDict's state
    p.put();
    p.str('_metadata');
    p.global('collections', 'OrderedDict');
    p.op(0x29, 0x52);
    p.put();
    prefixes.forEach((q, i) => {
      if (i % BATCH === 0 && prefixes.length - i > 1) p.op(0x28);
      p.str(q);
      p.op(0x7d);
      p.put();
      p.str('version', true);
      p.int(1);
      p.op(0x73);
      const end = Math.min(prefixes.length, (Math.floor(i / BATCH) + 1) * BATCH);
      if (i === end - 1) p.op(end - Math.floor(i / BATCH) * BATCH > 1 ? 0x75 : 0x73);
    });
    p.op(0x73); // SETITEM '_metadata'
    p.op(0x62); // BUILD
  }
  if (wrap !== null) p.op(0x73); // SETITEM
  p.op(0x2e); // STOP
  return p.bytes();
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** zlib's crc32 (node >= 20.15), or the table-driven one */
function crc32(b: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(b) >>> 0;
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Written {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
  zip64: boolean;
}

const MAX32 = 0xffffffff;
const ALIGN = 64;

/**
 * Write `tensors` (in order; storage n holds tensor n) as a torch.save zip checkpoint, atomically
 * (temp file + rename). Returns the file size in bytes.
 */
export function writeTorchCheckpoint(file: string, tensors: Map<string, TorchWriteTensor> | [string, TorchWriteTensor][], opts: TorchWriteOptions = {}): number {
  const list = tensors instanceof Map ? [...tensors.entries()] : tensors;
  const seen = new Set<string>();
  for (const [k, t] of list) {
    if (seen.has(k)) throw new WeightError(file, k, 'appears twice');
    seen.add(k);
    if (!t.shape.every(d => Number.isSafeInteger(d) && d >= 0)) throw new WeightError(file, k, `bad shape ${JSON.stringify(t.shape)}`);
    if (!STORAGE_CLASS[t.dtype]) throw new WeightError(file, k, `torch has no storage for ${t.dtype}`);
  }
  const root = opts.root ?? 'archive';
  if (!/^[A-Za-z0-9_.+-]+$/.test(root)) throw new Error(`${file}: archive root ${JSON.stringify(root)} must be a plain folder name`);
  const pkl = pickleStateDict(list.map(([k, t]) => [k, t]), opts.wrap === undefined ? 'model' : opts.wrap, opts.moduleMetadata ?? true);
  // torch writes the storages sorted by key as strings: data/0, data/1, data/10, ...
  const order = list.map((_, i) => i).sort((a, b) => (String(a) < String(b) ? -1 : 1));
  const written: Written[] = [];
  let pos = 0;
  writeStreamAtomic(file, append => {
    const entry = (name: string, size: number, data: () => Uint8Array, what: string) => {
      const nb = Buffer.from(`${root}/${name}`, 'utf8');
      const zip64 = opts.forceZip64 === true || size >= MAX32 || pos >= MAX32;
      const body = data();
      if (body.byteLength !== size) throw new WeightError(file, what, `${body.byteLength} bytes produced, ${size} expected`);
      // extra fields: zip64 sizes (local), then torch's 'FB' padding so the data starts 64-byte aligned
      const z64 = zip64 ? 20 : 0;
      const pad = (ALIGN - ((pos + 30 + nb.length + z64 + 4) % ALIGN)) % ALIGN;
      const extra = Buffer.alloc(z64 + 4 + pad);
      if (zip64) {
        extra.writeUInt16LE(0x0001, 0); extra.writeUInt16LE(16, 2);
        extra.writeBigUInt64LE(BigInt(size), 4); extra.writeBigUInt64LE(BigInt(size), 12);
      }
      extra.writeUInt16LE(0x4246, z64); extra.writeUInt16LE(pad, z64 + 2);
      const crc = crc32(body);
      const lh = Buffer.alloc(30);
      lh.writeUInt32LE(0x04034b50, 0);
      lh.writeUInt16LE(zip64 ? 45 : 20, 4);
      lh.writeUInt32LE(crc, 14);
      lh.writeUInt32LE(zip64 ? MAX32 : size, 18);
      lh.writeUInt32LE(zip64 ? MAX32 : size, 22);
      lh.writeUInt16LE(nb.length, 26);
      lh.writeUInt16LE(extra.length, 28);
      written.push({ name: nb, crc, size, offset: pos, zip64 });
      append(lh); append(nb); append(extra); append(body);
      pos += 30 + nb.length + extra.length + size;
    };
    entry('data.pkl', pkl.length, () => pkl, 'data.pkl');
    const little = Buffer.from('little', 'utf8');
    entry('byteorder', little.length, () => little, 'byteorder');
    for (const i of order) {
      const [key, t] = list[i];
      const size = numel(t.shape) * DTYPE_BYTES[t.dtype];
      entry(`data/${i}`, size, t.bytes, key);
    }
    const version = Buffer.from('3\n', 'utf8');
    entry('version', version.length, () => version, 'version');
    // central directory
    const cdStart = pos;
    for (const w of written) {
      const x = w.zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
      if (w.zip64) {
        x.writeUInt16LE(0x0001, 0); x.writeUInt16LE(24, 2);
        x.writeBigUInt64LE(BigInt(w.size), 4); x.writeBigUInt64LE(BigInt(w.size), 12); x.writeBigUInt64LE(BigInt(w.offset), 20);
      }
      const ch = Buffer.alloc(46);
      ch.writeUInt32LE(0x02014b50, 0);
      ch.writeUInt16LE(w.zip64 ? 45 : 20, 4);
      ch.writeUInt16LE(w.zip64 ? 45 : 20, 6);
      ch.writeUInt32LE(w.crc, 16);
      ch.writeUInt32LE(w.zip64 ? MAX32 : w.size, 20);
      ch.writeUInt32LE(w.zip64 ? MAX32 : w.size, 24);
      ch.writeUInt16LE(w.name.length, 28);
      ch.writeUInt16LE(x.length, 30);
      ch.writeUInt32LE(w.zip64 ? MAX32 : w.offset, 42);
      append(ch); append(w.name); append(x);
      pos += 46 + w.name.length + x.length;
    }
    const cdSize = pos - cdStart;
    const big = opts.forceZip64 === true || written.some(w => w.zip64) || cdStart >= MAX32 || written.length >= 0xffff;
    if (big) {
      const e64 = Buffer.alloc(56);
      e64.writeUInt32LE(0x06064b50, 0);
      e64.writeBigUInt64LE(44n, 4);
      e64.writeUInt16LE(45, 12); e64.writeUInt16LE(45, 14);
      e64.writeBigUInt64LE(BigInt(written.length), 24); e64.writeBigUInt64LE(BigInt(written.length), 32);
      e64.writeBigUInt64LE(BigInt(cdSize), 40); e64.writeBigUInt64LE(BigInt(cdStart), 48);
      const loc = Buffer.alloc(20);
      loc.writeUInt32LE(0x07064b50, 0);
      loc.writeBigUInt64LE(BigInt(pos), 8);
      loc.writeUInt32LE(1, 16);
      append(e64); append(loc);
      pos += 76;
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(big ? 0xffff : written.length, 8);
    eocd.writeUInt16LE(big ? 0xffff : written.length, 10);
    eocd.writeUInt32LE(big ? MAX32 : cdSize, 12);
    eocd.writeUInt32LE(big ? MAX32 : cdStart, 16);
    append(eocd);
    pos += 22;
  });
  return fs.statSync(file).size;
}
