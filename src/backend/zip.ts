/**
 * A small zip reader for wheels (setup:native): central directory, stored and deflated entries,
 * zip64 sizes and offsets, CRC-32 checked. Node's zlib only; no unzip binary needed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** offset of the local file header */
  offset: number;
  /** unix mode bits from the external attributes (0 when the zip was not made on unix) */
  mode: number;
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return b.subarray(0, got);
}

/** Every entry of the zip's central directory. */
export function listZip(file: string): ZipEntry[] {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const tailLen = Math.min(size, 65557);
    const tail = readAt(fd, size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) if (tail.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
    if (eocd < 0) throw new Error(`zip ${file}: no end-of-central-directory record (not a zip file, or truncated)`);
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || count === 0xffff) {
      const loc = eocd - 20;
      if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) throw new Error(`zip ${file}: zip64 end record locator missing`);
      const z = readAt(fd, Number(tail.readBigUInt64LE(loc + 8)), 56);
      if (z.readUInt32LE(0) !== 0x06064b50) throw new Error(`zip ${file}: bad zip64 end record`);
      count = Number(z.readBigUInt64LE(32));
      cdSize = Number(z.readBigUInt64LE(40));
      cdOffset = Number(z.readBigUInt64LE(48));
    }
    const cd = readAt(fd, cdOffset, cdSize);
    const out: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error(`zip ${file}: bad central directory entry ${i}`);
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const mode = cd.readUInt32LE(p + 38) >>> 16;
      let offset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information: the 0xffffffff fields, in order size, compressed size, offset
      let e = p + 46 + nameLen;
      const end = e + extraLen;
      while (e + 4 <= end) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) { size = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (offset === 0xffffffff) offset = Number(cd.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      out.push({ name, method, compressedSize, size, crc32, offset, mode });
      p = end + commentLen;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

function dataStart(fd: number, file: string, e: ZipEntry): number {
  const h = readAt(fd, e.offset, 30);
  if (h.length < 30 || h.readUInt32LE(0) !== 0x04034b50) throw new Error(`zip ${file}: bad local header for ${e.name}`);
  return e.offset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
}

function checkMethod(file: string, e: ZipEntry): void {
  if (e.method !== 0 && e.method !== 8) throw new Error(`zip ${file}: ${e.name} uses compression method ${e.method} (only stored and deflate are read)`);
}

/** One (small) entry into memory, CRC checked. */
export function readZipEntry(file: string, e: ZipEntry): Buffer {
  checkMethod(file, e);
  const fd = fs.openSync(file, 'r');
  try {
    const raw = readAt(fd, dataStart(fd, file, e), e.compressedSize);
    const data = e.method === 8 ? zlib.inflateRawSync(raw) : raw;
    if (zlib.crc32(data) >>> 0 !== e.crc32) throw new Error(`zip ${file}: CRC mismatch in ${e.name}`);
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Stream the entries whose `target(name)` is a path into those files (directories made as needed),
 * checking each CRC. Entries mapped to null are skipped. Executable bits are kept.
 */
export async function extractZip(file: string, entries: ZipEntry[], target: (name: string) => string | null): Promise<number> {
  const fd = fs.openSync(file, 'r');
  let n = 0;
  try {
    for (const e of entries) {
      const dest = target(e.name);
      if (!dest) continue;
      checkMethod(file, e);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      const start = dataStart(fd, file, e);
      let crc = 0;
      const check = new Transform({
        transform(chunk: Buffer, _enc, cb) { crc = zlib.crc32(chunk, crc); cb(null, chunk); },
      });
      const src = fs.createReadStream(file, { start, end: start + e.compressedSize - 1 });
      const sink = fs.createWriteStream(dest, { mode: e.mode & 0o111 ? 0o755 : 0o644 });
      if (e.compressedSize === 0) { src.destroy(); sink.end(); await new Promise<void>(r => { sink.on('close', () => r()); }); }
      else if (e.method === 8) await pipeline(src, zlib.createInflateRaw(), check, sink);
      else await pipeline(src, check, sink);
      if (e.compressedSize !== 0 && crc >>> 0 !== e.crc32) throw new Error(`zip ${file}: CRC mismatch in ${e.name}`);
      n++;
    }
  } finally {
    fs.closeSync(fd);
  }
  return n;
}
