/**
 * The one zip reader: the stored archives that torch.save writes (entries read in place, any byte
 * range) and deflated ones such as Python wheels (whole entries inflated, or streamed to a file),
 * CRC-32 checked. The central directory is read first (zip64 aware) and every entry is checked to
 * lie inside the file before anything is read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FormatError } from './errors.ts';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate */
  method: number;
  size: number;
  compressedSize: number;
  crc32: number;
  /** unix mode bits from the external attributes (0 when the zip was not made on unix) */
  mode: number;
  /** absolute offset of the entry's data */
  dataOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOC64 = 0x07064b50;
const SIG_CEN = 0x02014b50;
const SIG_LOC = 0x04034b50;

function u64(b: Buffer, off: number, file: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(file, `zip: 64-bit field ${v} is too large`);
  return Number(v);
}

export class ZipReader {
  readonly path: string;
  readonly entries = new Map<string, ZipEntry>();
  private fd: number | null;
  readonly size: number;

  private constructor(file: string, fd: number) {
    this.path = file;
    this.fd = fd;
    this.size = fs.fstatSync(fd).size;
    if (this.size < 22) throw new FormatError(file, `not a zip archive (${this.size} bytes)`);
    const tailLen = Math.min(this.size, 65557);
    const tail = this.pread(this.size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD) { eocd = i; break; }
    }
    if (eocd < 0) throw new FormatError(file, 'not a zip archive, or truncated: no end-of-central-directory record');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const eocdAbs = this.size - tailLen + eocd;
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      if (eocdAbs < 20) throw new FormatError(file, 'zip64 locator missing');
      const loc = this.pread(eocdAbs - 20, 20);
      if (loc.readUInt32LE(0) !== SIG_LOC64) throw new FormatError(file, 'zip64 locator missing');
      const e64 = u64(loc, 8, file);
      if (e64 + 56 > this.size) throw new FormatError(file, 'zip64 record outside the file: truncated');
      const r = this.pread(e64, 56);
      if (r.readUInt32LE(0) !== SIG_EOCD64) throw new FormatError(file, 'bad zip64 end-of-central-directory record');
      count = u64(r, 32, file);
      cdSize = u64(r, 40, file);
      cdOffset = u64(r, 48, file);
    }
    if (cdOffset + cdSize > this.size) throw new FormatError(file, `central directory (${cdOffset}+${cdSize}) lies outside the file (${this.size} bytes): truncated`);
    const cd = this.pread(cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CEN) throw new FormatError(file, `zip: central directory entry ${i} is corrupt`);
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      const mode = cd.readUInt32LE(p + 38) >>> 16;
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localOffset = cd.readUInt32LE(p + 42);
      const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
      let x = p + 46 + nameLen;
      const xend = x + extraLen;
      while (x + 4 <= xend) {
        const id = cd.readUInt16LE(x);
        const len = cd.readUInt16LE(x + 2);
        if (id === 0x0001) {
          let q = x + 4;
          if (size === 0xffffffff) { size = u64(cd, q, file); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = u64(cd, q, file); q += 8; }
          if (localOffset === 0xffffffff) { localOffset = u64(cd, q, file); q += 8; }
        }
        x += 4 + len;
      }
      p = xend + commentLen;
      if (localOffset + 30 > this.size) throw new FormatError(file, `zip entry '${name}' starts outside the file: truncated`);
      const lh = this.pread(localOffset, 30);
      if (lh.readUInt32LE(0) !== SIG_LOC) throw new FormatError(file, `zip entry '${name}': bad local header`);
      const dataOffset = localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
      if (dataOffset + compressedSize > this.size) {
        throw new FormatError(file, `zip entry '${name}' needs bytes ${dataOffset}..${dataOffset + compressedSize} but the file has ${this.size}: truncated`);
      }
      this.entries.set(name, { name, method, size, compressedSize, crc32, mode, dataOffset });
    }
  }

  static open(file: string): ZipReader {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new FormatError(file, `cannot open (${(e as Error).message})`);
    }
    try {
      return new ZipReader(file, fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private pread(pos: number, len: number): Buffer {
    if (this.fd === null) throw new FormatError(this.path, 'file is closed');
    const b = Buffer.alloc(len);
    const got = fs.readSync(this.fd, b, 0, len, pos);
    if (got !== len) throw new FormatError(this.path, `read ${got} of ${len} bytes at ${pos}: truncated`);
    return b;
  }

  /** bytes [start, start+len) of a stored entry */
  read(name: string, start = 0, len?: number): Buffer {
    const e = this.entries.get(name);
    if (!e) throw new FormatError(this.path, `zip has no entry '${name}'`);
    if (e.method !== 0) throw new FormatError(this.path, `zip entry '${name}' is compressed (method ${e.method}); torch checkpoints store entries uncompressed`);
    const n = len ?? e.size - start;
    if (start < 0 || start + n > e.size) throw new FormatError(this.path, `zip entry '${name}': bytes ${start}..${start + n} outside its ${e.size} bytes`);
    return this.pread(e.dataOffset + start, n);
  }

  private entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new FormatError(this.path, `zip has no entry '${name}'`);
    if (e.method !== 0 && e.method !== 8) throw new FormatError(this.path, `zip entry '${name}' uses compression method ${e.method} (only stored and deflate are read)`);
    return e;
  }

  /** A whole entry, stored or deflated, into memory, CRC checked (for small entries). */
  inflate(name: string): Buffer {
    const e = this.entry(name);
    const raw = this.pread(e.dataOffset, e.compressedSize);
    const data = e.method === 8 ? zlib.inflateRawSync(raw) : raw;
    if (data.length !== e.size || zlib.crc32(data) >>> 0 !== e.crc32) throw new FormatError(this.path, `zip entry '${name}': CRC or size mismatch (corrupt)`);
    return data;
  }

  /** Stream one entry into `dest` (folders made as needed), CRC checked; executable bits kept. */
  async extract(name: string, dest: string): Promise<void> {
    const e = this.entry(name);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const mode = e.mode & 0o111 ? 0o755 : 0o644;
    if (e.compressedSize === 0) {
      fs.writeFileSync(dest, Buffer.alloc(0), { mode });
      return;
    }
    let crc = 0;
    const check = new Transform({ transform(chunk: Buffer, _enc, cb) { crc = zlib.crc32(chunk, crc); cb(null, chunk); } });
    const src = fs.createReadStream(this.path, { start: e.dataOffset, end: e.dataOffset + e.compressedSize - 1 });
    const sink = fs.createWriteStream(dest, { mode });
    if (e.method === 8) await pipeline(src, zlib.createInflateRaw(), check, sink);
    else await pipeline(src, check, sink);
    if (crc >>> 0 !== e.crc32) throw new FormatError(this.path, `zip entry '${name}': CRC or size mismatch (corrupt)`);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
