/** Writes that matter go to a temp file beside the target and are renamed into place. */
import * as fs from 'node:fs';
import * as path from 'node:path';

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
}

/** Write `chunks` to `target` atomically: fsync'd temp file, then rename. */
export function writeFileAtomic(target: string, chunks: Uint8Array | string | (Uint8Array | string)[]): void {
  fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempName(target);
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const c of Array.isArray(chunks) ? chunks : [chunks]) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let off = 0;
      while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, target);
}

/** Streamed atomic write: `write` receives a function that appends bytes. */
export function writeStreamAtomic(target: string, write: (append: (b: Uint8Array) => void) => void): void {
  fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempName(target);
  const fd = fs.openSync(tmp, 'w');
  try {
    write(b => {
      let off = 0;
      while (off < b.byteLength) off += fs.writeSync(fd, b, off, b.byteLength - off);
    });
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.renameSync(tmp, target);
}

export function writeJsonAtomic(target: string, value: unknown): void {
  writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n');
}
