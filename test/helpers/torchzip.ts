/**
 * Test helper: writes torch.save-layout zip checkpoints byte by byte (a protocol-2 pickle of
 * an OrderedDict of tensors plus stored `data/<n>` entries), to exercise the .pt reader.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

export interface PtTensor {
  storage: string; // 'FloatStorage', 'HalfStorage', ...
  key: string;
  /** a string or a fractional number writes a forged offset */
  offset: number | string;
  shape: number[];
  stride: number[];
  numel: number;
}

const enc = new TextEncoder();

class PickleWriter {
  bytes: number[] = [];
  op(...b: number[]) { this.bytes.push(...b); }
  str(s: string) {
    const u = enc.encode(s);
    this.op(0x58, u.length & 255, (u.length >> 8) & 255, (u.length >> 16) & 255, u.length >>> 24, ...u); // BINUNICODE
  }
  int(n: number) {
    this.op(0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255); // BININT
  }
  float(x: number) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    this.op(0x47, ...b); // BINFLOAT
  }
  global(mod: string, name: string) { this.op(0x63, ...enc.encode(`${mod}\n${name}\n`)); }
  mark() { this.op(0x28); }
  tuple() { this.op(0x74); }
  tupleOf(xs: number[]) { this.mark(); for (const x of xs) this.int(x); this.tuple(); }
}

export interface PickleOptions {
  wrapModel?: boolean;
  extraGlobal?: [string, string];
  /** add an entry 'forged' = _rebuild_parameter(a dict that looks like a tensor) */
  forgeParameter?: boolean;
}

/** A pickle of `{name: tensor}` in an OrderedDict, optionally wrapped as {"model": ...}; `extraGlobal` injects a forbidden global. */
export function picklePt(tensors: Record<string, PtTensor>, opts: PickleOptions = {}): Uint8Array {
  const w = new PickleWriter();
  w.op(0x80, 2); // PROTO 2
  if (opts.wrapModel) { w.op(0x7d); w.str('model'); }
  w.global('collections', 'OrderedDict');
  w.op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  w.mark();
  for (const [name, t] of Object.entries(tensors)) {
    w.str(name);
    w.global('torch._utils', '_rebuild_tensor_v2');
    w.mark();
    w.mark(); w.str('storage'); w.global('torch', t.storage); w.str(t.key); w.str('cpu'); w.int(t.numel); w.tuple();
    w.op(0x51); // BINPERSID
    if (typeof t.offset === 'string') w.str(t.offset);
    else if (Number.isInteger(t.offset)) w.int(t.offset);
    else w.float(t.offset);
    w.tupleOf(t.shape);
    w.tupleOf(t.stride);
    w.op(0x89); // NEWFALSE
    w.global('collections', 'OrderedDict'); w.op(0x29, 0x52);
    w.tuple();
    w.op(0x52); // REDUCE
  }
  if (opts.forgeParameter) {
    w.str('forged');
    w.global('torch._utils', '_rebuild_parameter');
    w.mark();
    w.op(0x7d); w.mark(); w.str('kind'); w.str('tensor'); w.str('shape'); w.int(3); w.op(0x75); // {'kind': 'tensor', 'shape': 3}
    w.op(0x88); // NEWTRUE
    w.global('collections', 'OrderedDict'); w.op(0x29, 0x52);
    w.tuple();
    w.op(0x52);
  }
  if (opts.extraGlobal) { w.str('evil'); w.global(...opts.extraGlobal); w.op(0x29, 0x52); }
  w.op(0x75); // SETITEMS
  if (opts.wrapModel) w.op(0x73); // SETITEM
  w.op(0x2e); // STOP
  return Uint8Array.from(w.bytes);
}

const crc32 = (b: Uint8Array): number => zlib.crc32(b) >>> 0;

/** A stored (uncompressed) zip of the given entries. */
export function zipStored(entries: [string, Uint8Array][]): Uint8Array {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const [name, data] of entries) {
    const nb = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(data.length, 22); lh.writeUInt16LE(nb.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(data.length, 20); ch.writeUInt32LE(data.length, 24); ch.writeUInt16LE(nb.length, 28); ch.writeUInt32LE(off, 42);
    central.push(ch, nb);
    chunks.push(lh, nb, Buffer.from(data));
    off += 30 + nb.length + data.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0); eocd.writeUInt16LE(entries.length, 8); eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12); eocd.writeUInt32LE(off, 16);
  return Buffer.concat([...chunks, cd, eocd]);
}

/** Write a .pt with float32 storages given as arrays. */
export function writePt(file: string, tensors: Record<string, PtTensor>, storages: Record<string, Uint8Array>, opts: PickleOptions = {}): void {
  const entries: [string, Uint8Array][] = [['archive/data.pkl', picklePt(tensors, opts)]];
  for (const [k, b] of Object.entries(storages)) entries.push([`archive/data/${k}`, b]);
  entries.push(['archive/version', enc.encode('3\n')]);
  fs.writeFileSync(file, zipStored(entries));
}

export function f32bytes(xs: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(xs).buffer);
}
