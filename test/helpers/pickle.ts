/** Test helper: a protocol-2 pickle of plain data (None, bool, int, float, str, list, dict), as Python 2's pickle writes refs(umd).p. */
const enc = new TextEncoder();

export function pickleData(value: unknown): Uint8Array {
  const b: number[] = [0x80, 2]; // PROTO 2
  const put = (v: unknown): void => {
    if (v === null || v === undefined) b.push(0x4e); // NONE
    else if (typeof v === 'boolean') b.push(v ? 0x88 : 0x89);
    else if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) < 2 ** 31) b.push(0x4a, v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255); // BININT
    else if (typeof v === 'number') {
      const d = new DataView(new ArrayBuffer(8));
      d.setFloat64(0, v, false);
      b.push(0x47, ...new Uint8Array(d.buffer)); // BINFLOAT, big-endian
    } else if (typeof v === 'string') {
      const u = enc.encode(v);
      b.push(0x58, u.length & 255, (u.length >> 8) & 255, (u.length >> 16) & 255, u.length >>> 24, ...u); // BINUNICODE
    } else if (Array.isArray(v)) {
      b.push(0x5d, 0x28); // EMPTY_LIST, MARK
      v.forEach(put);
      b.push(0x65); // APPENDS
    } else if (typeof v === 'object') {
      b.push(0x7d, 0x28); // EMPTY_DICT, MARK
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) { put(k); put(x); }
      b.push(0x75); // SETITEMS
    } else throw new Error(`pickleData: cannot write ${typeof v}`);
  };
  put(value);
  b.push(0x2e); // STOP
  return Uint8Array.from(b);
}

/** pycocotools' compressed RLE string of run lengths (rleToString). */
export function rleString(counts: number[]): string {
  let s = '';
  counts.forEach((c, i) => {
    let x = i > 2 ? c - counts[i - 2] : c;
    let more = true;
    while (more) {
      let ch = x & 0x1f;
      x >>= 5;
      more = ch & 0x10 ? x !== -1 : x !== 0;
      if (more) ch |= 0x20;
      s += String.fromCharCode(ch + 48);
    }
  });
  return s;
}
