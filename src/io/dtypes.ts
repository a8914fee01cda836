/** Storage dtypes of checkpoint files and their decoding into JS typed arrays. */

/** Element dtypes as safetensors names them; torch storages map onto the same names. */
export type StorageDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'BOOL';

export const DTYPE_BYTES: Record<StorageDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, BOOL: 1,
};

export function isStorageDtype(s: unknown): s is StorageDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** A decoded tensor: float dtypes become Float32Array, integers Int32Array, U8/BOOL Uint8Array. */
export interface RawTensor {
  dtype: StorageDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const f16Table = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** float32 -> IEEE half bits, round to nearest even. */
export function f32ToF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** float32 -> bfloat16 bits, round to nearest even. */
export function f32ToBf16Bits(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff)) return (u >>> 16) | 0x40;
  const r = u + 0x7fff + ((u >>> 16) & 1);
  return (r >>> 16) & 0xffff;
}

/**
 * Decode little-endian bytes of `dtype` into a typed array. `where` names the file and key
 * for errors (I64 values outside int32 cannot be represented by tfjs and are refused).
 */
export function decode(bytes: Uint8Array, dtype: StorageDtype, count: number, where: () => string): Float32Array | Int32Array | Uint8Array {
  const need = count * DTYPE_BYTES[dtype];
  if (bytes.byteLength !== need) throw new Error(`${where()}: ${bytes.byteLength} bytes for ${count} ${dtype} elements (need ${need})`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = f16Table[dv.getUint16(i * 2, true)];
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'I64': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = dv.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n) throw new Error(`${where()}: I64 value ${v} at element ${i} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    case 'I16': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt16(i * 2, true);
      return out;
    }
    case 'U16': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getUint16(i * 2, true);
      return out;
    }
    case 'I8': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt8(i);
      return out;
    }
    case 'U8':
      return new Uint8Array(bytes);
    case 'BOOL': {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        const b = bytes[i];
        if (b > 1) throw new Error(`${where()}: BOOL byte ${b} at element ${i} is neither 0 nor 1`);
        out[i] = b;
      }
      return out;
    }
  }
}

/** Encode a typed array as little-endian bytes of `dtype` (the inverse of decode). */
export function encode(data: ArrayLike<number>, dtype: StorageDtype): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = data[i];
    switch (dtype) {
      case 'F32': dv.setFloat32(i * 4, v, true); break;
      case 'F64': dv.setFloat64(i * 8, v, true); break;
      case 'F16': dv.setUint16(i * 2, f32ToF16Bits(v), true); break;
      case 'BF16': dv.setUint16(i * 2, f32ToBf16Bits(v), true); break;
      case 'I64': dv.setBigInt64(i * 8, BigInt(Math.trunc(v)), true); break;
      case 'I32': dv.setInt32(i * 4, v, true); break;
      case 'I16': dv.setInt16(i * 2, v, true); break;
      case 'U16': dv.setUint16(i * 2, v, true); break;
      case 'I8': dv.setInt8(i, v); break;
      case 'U8': dv.setUint8(i, v); break;
      case 'BOOL': dv.setUint8(i, v ? 1 : 0); break;
    }
  }
  return out;
}
