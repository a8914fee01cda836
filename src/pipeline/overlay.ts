/** Mask and overlay images of a segmentation result (PNG through sharp, drawing through SVG). */
import sharp from 'sharp';
import type { ImageU8 } from '../io/resample.ts';
import { writeFileAtomic } from '../io/atomic.ts';

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** A binary mask as a grey PNG (255 inside). */
export async function maskPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  const g = new Uint8Array(width * height);
  for (let i = 0; i < g.length; i++) g[i] = mask[i] ? 255 : 0;
  return sharp(Buffer.from(g), { raw: { width, height, channels: 1 } }).png().toBuffer();
}

/** The image with the mask tinted, the box, the points and the caption drawn. */
export async function overlayPng(img: ImageU8, opts: { mask?: Uint8Array | null; bbox?: number[] | null; points?: number[][] | null; caption?: string | null; color?: [number, number, number] }): Promise<Buffer> {
  const { width: w, height: h } = img;
  const col = opts.color ?? [255, 40, 90];
  const rgb = new Uint8Array(img.data);
  if (opts.mask) for (let i = 0; i < w * h; i++) if (opts.mask[i]) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = Math.round(rgb[i * 3 + c] * 0.5 + col[c] * 0.5);
  const stroke = Math.max(1, Math.round(Math.min(w, h) / 150));
  const font = Math.max(10, Math.round(Math.min(w, h) / 18));
  const parts: string[] = [];
  if (opts.bbox) {
    const [x1, y1, x2, y2] = opts.bbox;
    parts.push(`<rect x="${x1}" y="${y1}" width="${Math.max(0, x2 - x1)}" height="${Math.max(0, y2 - y1)}" fill="none" stroke="rgb(40,255,120)" stroke-width="${stroke}"/>`);
  }
  for (const p of opts.points ?? []) parts.push(`<circle cx="${p[0]}" cy="${p[1]}" r="${stroke * 2.5}" fill="rgb(255,220,0)" stroke="black" stroke-width="${Math.max(1, stroke / 2)}"/>`);
  if (opts.caption) {
    parts.push(`<rect x="0" y="${h - font * 1.5}" width="${w}" height="${font * 1.5}" fill="black" fill-opacity="0.55"/>`);
    parts.push(`<text x="${font * 0.4}" y="${h - font * 0.45}" font-family="DejaVu Sans, sans-serif" font-size="${font}" fill="white">${escapeXml(opts.caption)}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${parts.join('')}</svg>`;
  return sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } }).composite([{ input: Buffer.from(svg) }]).png().toBuffer();
}

export function saveBuffer(file: string, b: Buffer): void {
  writeFileAtomic(file, b);
}
