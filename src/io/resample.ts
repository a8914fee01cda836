/**
 * Image resampling with Pillow's exact arithmetic (Image.resize with BICUBIC / BILINEAR /
 * NEAREST on 8-bit images): separable convolution with the filter support widened by the
 * downscale factor (antialiasing), 22-bit fixed-point coefficients, horizontal pass first,
 * an 8-bit intermediate image, and Pillow's rounding and clipping. The reference
 * preprocessors (CLIP, Qwen2-VL, the 840x840 view) all resize through Pillow, so matching
 * it makes our pixel values the official ones rather than merely close.
 */

/** An 8-bit image, channels interleaved (HWC). */
export interface ImageU8 {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export type ResampleFilter = 'nearest' | 'bilinear' | 'bicubic';

const PRECISION_BITS = 32 - 8 - 2;

interface Filter {
  support: number;
  fn: (x: number) => number;
}

const FILTERS: Record<Exclude<ResampleFilter, 'nearest'>, Filter> = {
  bilinear: { support: 1, fn: x => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  bicubic: {
    support: 2,
    fn: x => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output
  k: Int32Array; // fixed-point coefficients, ksize per output
}

function precompute(inSize: number, in0: number, in1: number, outSize: number, f: Filter): Coeffs {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = f.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kf = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = f.fn((x + xmin - center + 0.5) * ss);
      kf[xx * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) kf[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const k = new Int32Array(outSize * ksize);
  const one = 1 << PRECISION_BITS;
  for (let i = 0; i < kf.length; i++) k[i] = kf[i] < 0 ? Math.trunc(-0.5 + kf[i] * one) : Math.trunc(0.5 + kf[i] * one);
  return { ksize, bounds, k };
}

function clip8(v: number): number {
  if (v >= 256 * (1 << PRECISION_BITS)) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / (1 << PRECISION_BITS));
}

function horizontal(img: ImageU8, outW: number, c: Coeffs, y0: number, rows: number): ImageU8 {
  const { width, channels: ch, data } = img;
  const out = new Uint8Array(outW * rows * ch);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const rowIn = (y + y0) * width * ch;
    const rowOut = y * outW * ch;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.bounds[xx * 2];
      const xmax = c.bounds[xx * 2 + 1];
      const kb = xx * c.ksize;
      for (let b = 0; b < ch; b++) {
        let ss = half;
        for (let x = 0; x < xmax; x++) ss += data[rowIn + (x + xmin) * ch + b] * c.k[kb + x];
        out[rowOut + xx * ch + b] = clip8(ss);
      }
    }
  }
  return { width: outW, height: rows, channels: ch, data: out };
}

function vertical(img: ImageU8, outH: number, c: Coeffs, offset: number): ImageU8 {
  const { width, channels: ch, data } = img;
  const out = new Uint8Array(width * outH * ch);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[yy * 2] - offset;
    const ymax = c.bounds[yy * 2 + 1];
    const kb = yy * c.ksize;
    for (let x = 0; x < width; x++) {
      for (let b = 0; b < ch; b++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) ss += data[((y + ymin) * width + x) * ch + b] * c.k[kb + y];
        out[(yy * width + x) * ch + b] = clip8(ss);
      }
    }
  }
  return { width, height: outH, channels: ch, data: out };
}

function nearest(img: ImageU8, w: number, h: number): ImageU8 {
  const { width, height, channels: ch, data } = img;
  const out = new Uint8Array(w * h * ch);
  // Pillow's affine nearest: source = floor((dst + 0.5) * scale)
  const sx = width / w;
  const sy = height / h;
  for (let y = 0; y < h; y++) {
    const yi = Math.min(height - 1, Math.floor((y + 0.5) * sy));
    for (let x = 0; x < w; x++) {
      const xi = Math.min(width - 1, Math.floor((x + 0.5) * sx));
      for (let b = 0; b < ch; b++) out[(y * w + x) * ch + b] = data[(yi * width + xi) * ch + b];
    }
  }
  return { width: w, height: h, channels: ch, data: out };
}

/** Image.resize((w, h), filter) of Pillow, for 8-bit images of any channel count. */
export function resize(img: ImageU8, w: number, h: number, filter: ResampleFilter = 'bicubic'): ImageU8 {
  if (!(w > 0 && h > 0 && Number.isInteger(w) && Number.isInteger(h))) throw new Error(`resize: bad target size ${w}x${h}`);
  if (w === img.width && h === img.height) return { ...img, data: img.data.slice() };
  if (filter === 'nearest') return nearest(img, w, h);
  const f = FILTERS[filter];
  const needH = w !== img.width;
  const needV = h !== img.height;
  const cv = needV ? precompute(img.height, 0, img.height, h, f) : null;
  let cur = img;
  if (needH) {
    const ch = precompute(img.width, 0, img.width, w, f);
    let y0 = 0;
    let rows = img.height;
    if (cv) {
      // only the rows the vertical pass will read
      y0 = cv.bounds[0];
      const last = (h - 1) * 2;
      rows = cv.bounds[last] + cv.bounds[last + 1] - y0;
    }
    cur = horizontal(img, w, ch, y0, rows);
    if (cv) return vertical(cur, h, cv, y0);
    return cur;
  }
  return vertical(cur, h, cv!, 0);
}

/** Image.crop((x1, y1, x2, y2)): right/bottom exclusive; areas outside the image are black, as Pillow does. */
export function crop(img: ImageU8, x1: number, y1: number, x2: number, y2: number): ImageU8 {
  const w = Math.max(0, x2 - x1);
  const h = Math.max(0, y2 - y1);
  const ch = img.channels;
  const out = new Uint8Array(w * h * ch);
  for (let y = 0; y < h; y++) {
    const sy = y + y1;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < w; x++) {
      const sx = x + x1;
      if (sx < 0 || sx >= img.width) continue;
      for (let b = 0; b < ch; b++) out[(y * w + x) * ch + b] = img.data[(sy * img.width + sx) * ch + b];
    }
  }
  return { width: w, height: h, channels: ch, data: out };
}
