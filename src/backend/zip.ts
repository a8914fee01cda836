/**
 * Wheels for setup:native, read with the project's one zip reader (src/io/zip.ts: stored and
 * deflated entries, zip64, CRC-32 checked; Node's zlib only, no unzip binary).
 */
import { ZipReader, type ZipEntry } from '../io/zip.ts';

export type { ZipEntry };

function withZip<T>(file: string, fn: (z: ZipReader) => T): T {
  const z = ZipReader.open(file);
  try {
    return fn(z);
  } finally {
    z.close();
  }
}

/** Every entry of the zip's central directory. */
export function listZip(file: string): ZipEntry[] {
  return withZip(file, z => [...z.entries.values()]);
}

/** One (small) entry into memory, CRC checked. */
export function readZipEntry(file: string, e: ZipEntry): Buffer {
  return withZip(file, z => z.inflate(e.name));
}

/**
 * Stream the entries whose `target(name)` is a path into those files (directories made as needed),
 * checking each CRC. Entries mapped to null are skipped. Executable bits are kept.
 */
export async function extractZip(file: string, entries: ZipEntry[], target: (name: string) => string | null): Promise<number> {
  const z = ZipReader.open(file);
  let n = 0;
  try {
    for (const e of entries) {
      const dest = target(e.name);
      if (!dest) continue;
      await z.extract(e.name, dest);
      n++;
    }
  } finally {
    z.close();
  }
  return n;
}
