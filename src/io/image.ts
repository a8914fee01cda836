/** Decoding and encoding images through sharp; pixels are ImageU8 (RGB, HWC). */
import * as fs from 'node:fs';
import sharp from 'sharp';
import { FormatError } from './errors.ts';
import type { ImageU8 } from './resample.ts';

export type { ImageU8 } from './resample.ts';

/** Decode a file or encoded buffer into 8-bit RGB (alpha dropped, as PIL's convert('RGB')). */
export async function loadImage(src: string | Uint8Array): Promise<ImageU8> {
  const where = typeof src === 'string' ? src : '<buffer>';
  if (typeof src === 'string' && !fs.existsSync(src)) throw new FormatError(src, 'image file not found');
  try {
    const { data, info } = await sharp(src).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.channels === 3) return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data) };
    if (info.channels === 1) {
      const out = new Uint8Array(info.width * info.height * 3);
      for (let i = 0; i < info.width * info.height; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[i];
      return { width: info.width, height: info.height, channels: 3, data: out };
    }
    throw new Error(`${info.channels} channels`);
  } catch (e) {
    throw new FormatError(where, `cannot decode the image (${(e as Error).message})`);
  }
}

/** An ImageU8 from raw HWC bytes (e.g. a fixture's U8 [H, W, 3] tensor). */
export function imageFromHwc(data: Uint8Array, shape: readonly number[]): ImageU8 {
  if (shape.length !== 3 || (shape[2] !== 3 && shape[2] !== 1)) throw new Error(`image: expected [H, W, 3], got [${shape}]`);
  return { height: shape[0], width: shape[1], channels: shape[2], data };
}

/** Encode as PNG (atomic write when a path is given). */
export async function savePng(img: ImageU8, file?: string): Promise<Buffer> {
  const buf = await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 | 4 } }).png().toBuffer();
  if (file) {
    const { writeFileAtomic } = await import('./atomic.ts');
    writeFileAtomic(file, buf);
  }
  return buf;
}
