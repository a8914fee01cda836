/**
 * Seeded stand-in values for checkpoint tensors, produced as encoded bytes one tensor at a time.
 *
 * Each tensor has its own stream (xorshift32 seeded by FNV-1a of `seed:key`), so its values do not
 * depend on the order tensors are written in, the sharding, or which other tensors exist (a tiny
 * config and the real size give the same first values for a key of the same shape).
 * A 'normal' value is an Irwin-Hall sum of four random bytes (mean 510, sd 147.8), standardised
 * and scaled: 1021 levels, |x| <= 3.45 sd, looked up in a table of encoded values, so generation
 * runs at memory speed. No value is subnormal, infinite or NaN: the smallest nonzero magnitude is
 * sd / 147.8.
 */
import { DTYPE_BYTES, f32ToBf16Bits, f32ToF16Bits, numel, type StorageDtype } from '../io/dtypes.ts';

/** How a tensor is filled: seeded normal(0, std), a constant, or 0..n-1 along the last axis (position ids). */
export type Init = { kind: 'normal'; std: number } | { kind: 'const'; value: number } | { kind: 'arange' };

export const normal = (std: number): Init => ({ kind: 'normal', std });
export const constant = (value: number): Init => ({ kind: 'const', value });
export const ONES: Init = { kind: 'const', value: 1 };
export const ZEROS: Init = { kind: 'const', value: 0 };

const LEVELS = 1021;
const MEAN = 510;
/** sd of the sum of four uniform bytes: sqrt(4 * (256^2 - 1) / 12) */
const SD = Math.sqrt((4 * (256 * 256 - 1)) / 12);

/** FNV-1a of a string (UTF-16 code units), never 0 (xorshift's fixed point). */
export function streamSeed(seed: number, key: string): number {
  let h = 0x811c9dc5;
  const s = `${seed}:${key}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h === 0 ? 0x9e3779b9 | 0 : h | 0;
}

const FLOATS: readonly StorageDtype[] = ['F32', 'F16', 'BF16'];

/** The encoded bytes of one tensor filled by `init` from the stream of (seed, key). */
export function tensorBytes(key: string, dtype: StorageDtype, shape: readonly number[], init: Init, seed: number): Uint8Array {
  const n = numel(shape);
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = new DataView(out.buffer);
  if (init.kind === 'arange') {
    const last = shape.length ? shape[shape.length - 1] : 1;
    for (let i = 0; i < n; i++) {
      const v = i % last;
      if (dtype === 'I64') dv.setBigInt64(i * 8, BigInt(v), true);
      else if (dtype === 'I32') dv.setInt32(i * 4, v, true);
      else throw new Error(`${key}: arange needs I64 or I32, not ${dtype}`);
    }
    return out;
  }
  if (!FLOATS.includes(dtype)) throw new Error(`${key}: ${init.kind} values need a float dtype, not ${dtype}`);
  const values = init.kind === 'const' ? [init.value] : Array.from({ length: LEVELS }, (_, s) => ((s - MEAN) / SD) * init.std);
  for (const v of values) {
    if (!Number.isFinite(v) || (v !== 0 && Math.abs(v) < 6.2e-5 && dtype === 'F16')) throw new Error(`${key}: value ${v} is not finite or is subnormal in ${dtype}`);
  }
  if (dtype === 'F32') {
    const table = Float32Array.from(values);
    const f = new Float32Array(out.buffer);
    if (init.kind === 'const') f.fill(table[0]);
    else fillTable(f, table, streamSeed(seed, key));
    return out;
  }
  const bits = values.map(v => (dtype === 'BF16' ? f32ToBf16Bits(v) : f32ToF16Bits(v)));
  const table = Uint16Array.from(bits);
  const u = new Uint16Array(out.buffer);
  if (init.kind === 'const') u.fill(table[0]);
  else fillTable(u, table, streamSeed(seed, key));
  return out;
}

/** out[i] = table[sum of the four bytes of the i-th xorshift32 draw] */
function fillTable(out: Float32Array | Uint16Array, table: Float32Array | Uint16Array, seed: number): void {
  let x = seed | 0;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = table[(x & 255) + ((x >>> 8) & 255) + ((x >>> 16) & 255) + (x >>> 24)];
  }
}
