/**
 * Mask and overlay images of a segmentation result (PNG through sharp, drawing through SVG).
 *
 * An overlay is a sheet: a title band ABOVE the image (an optional heading and the query), one or
 * more image panels, and a band BELOW (the caption and a legend). Bands extend the canvas, so the
 * image is never covered by text, and long text wraps instead of being cut. On a panel the
 * prediction is drawn in one colour (mask tinted with its outline, box solid), the points in
 * yellow, and the ground truth in another colour (mask outline, box dashed). Images under
 * MIN_SIDE px are enlarged by a whole factor (nearest neighbour) so the text stays legible.
 */
import sharp from 'sharp';
import type { ImageU8 } from '../io/resample.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { escapeXml, FONT, textWidth, wrapText } from '../util/plot.ts';

export type Rgb = [number, number, number];
export const PRED_COLOR: Rgb = [255, 40, 90];
export const GT_COLOR: Rgb = [0, 200, 255];
export const POINT_COLOR: Rgb = [255, 220, 0];
const BAND = '#1c1c1c';
/** images smaller than this (longest side, px) are enlarged by a whole factor */
export const MIN_SIDE = 320;

const css = (c: Rgb) => `rgb(${c[0]},${c[1]},${c[2]})`;

/** A binary mask as a grey PNG (255 inside). */
export async function maskPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  const g = new Uint8Array(width * height);
  for (let i = 0; i < g.length; i++) g[i] = mask[i] ? 255 : 0;
  return sharp(Buffer.from(g), { raw: { width, height, channels: 1 } }).png().toBuffer();
}

export interface GroundTruth {
  /** the target mask at the image's size */
  mask?: Uint8Array | null;
  /** [x1, y1, x2, y2] in image pixels */
  box?: number[] | null;
  /** tint the mask too (not just its outline) */
  fill?: boolean;
}

export interface OverlayPanel {
  image: ImageU8;
  /** a small label over the panel, e.g. 'prediction' */
  label?: string | null;
  mask?: Uint8Array | null;
  /** [x1, y1, x2, y2] in image pixels */
  bbox?: number[] | null;
  /** [[x, y], ...] in image pixels */
  points?: number[][] | null;
  groundTruth?: GroundTruth | null;
  /** the prediction's colour */
  color?: Rgb;
}

export interface SheetOptions {
  /** a heading line above the query, e.g. 'IoU 42.0%' */
  title?: string | null;
  query?: string | null;
  caption?: string | null;
  /** a legend of what is drawn (default true) */
  legend?: boolean;
  /** whole enlargement factor of the images (default: enough to reach MIN_SIDE px) */
  scale?: number;
}

export interface OverlayOptions extends SheetOptions {
  mask?: Uint8Array | null;
  bbox?: number[] | null;
  points?: number[][] | null;
  groundTruth?: GroundTruth | null;
  color?: Rgb;
}

export interface SheetLayout {
  width: number;
  height: number;
  scale: number;
  font: number;
  /** where each panel's image lies on the canvas */
  panels: { left: number; top: number; width: number; height: number }[];
  header: string[];
  footer: string[];
}

interface LegendEntry { name: string; svg: (x: number, y: number, s: number) => string }

function legendEntries(panels: OverlayPanel[]): LegendEntry[] {
  const out: LegendEntry[] = [];
  const pred = panels.find(p => p.mask || p.bbox)?.color ?? PRED_COLOR;
  if (panels.some(p => p.mask)) out.push({ name: 'predicted mask', svg: (x, y, s) => `<rect x="${x}" y="${y}" width="${s}" height="${s}" fill="${css(pred)}" fill-opacity="0.6" stroke="${css(pred)}" stroke-width="2"/>` });
  if (panels.some(p => p.bbox)) out.push({ name: 'predicted box', svg: (x, y, s) => `<rect x="${x + 1}" y="${y + 1}" width="${s - 2}" height="${s - 2}" fill="none" stroke="${css(pred)}" stroke-width="2.5"/>` });
  if (panels.some(p => p.points?.length)) out.push({ name: 'points', svg: (x, y, s) => `<circle cx="${x + s / 2}" cy="${y + s / 2}" r="${s / 3}" fill="${css(POINT_COLOR)}" stroke="black"/>` });
  if (panels.some(p => p.groundTruth?.mask)) out.push({ name: 'ground-truth mask', svg: (x, y, s) => `<rect x="${x + 1}" y="${y + 1}" width="${s - 2}" height="${s - 2}" fill="${css(GT_COLOR)}" fill-opacity="0.25" stroke="${css(GT_COLOR)}" stroke-width="2.5"/>` });
  if (panels.some(p => p.groundTruth?.box)) out.push({ name: 'ground-truth box', svg: (x, y, s) => `<rect x="${x + 1}" y="${y + 1}" width="${s - 2}" height="${s - 2}" fill="none" stroke="${css(GT_COLOR)}" stroke-width="2.5" stroke-dasharray="4 2"/>` });
  return out;
}

/** legend rows across `width`: [entry index, x offset] per row */
function legendRows(entries: LegendEntry[], width: number, font: number, pad: number): [number, number][][] {
  const rows: [number, number][][] = [];
  let x = pad;
  entries.forEach((e, i) => {
    const w = font * 1.6 + textWidth(e.name, font) + font * 1.2;
    if (!rows.length || (x > pad && x + w > width - pad)) { rows.push([]); x = pad; }
    rows[rows.length - 1].push([i, x]);
    x += w;
  });
  return rows;
}

function checkPanel(p: OverlayPanel, i: number): void {
  const { width: w, height: h, channels: ch, data } = p.image;
  if (![1, 3, 4].includes(ch)) throw new Error(`overlayPng: panel ${i}: image has ${ch} channels (1, 3 or 4 expected)`);
  if (data.length !== w * h * ch) throw new Error(`overlayPng: panel ${i}: image data has ${data.length} values, expected ${w} x ${h} x ${ch} = ${w * h * ch}`);
  for (const [key, m] of [['mask', p.mask], ['groundTruth.mask', p.groundTruth?.mask]] as const) if (m && m.length !== w * h) throw new Error(`overlayPng: panel ${i}: ${key} has ${m.length} values, expected ${w} x ${h} = ${w * h}`);
}

/** the sheet's geometry (exported for tests): canvas size, image placement and the wrapped text */
export function sheetLayout(panels: OverlayPanel[], opts: SheetOptions = {}): SheetLayout & { pad: number; lineH: number; labelH: number; legend: [number, number][][]; entries: LegendEntry[] } {
  if (!panels.length) throw new Error('overlayPng: no image panels');
  panels.forEach(checkPanel);
  const maxSide = Math.max(...panels.map(p => Math.max(p.image.width, p.image.height)));
  const scale = opts.scale ?? Math.max(1, Math.floor(MIN_SIDE / maxSide));
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`overlayPng: scale must be a whole number >= 1, got ${scale}`);
  const gap = panels.length > 1 ? Math.max(4, 2 * scale) : 0;
  const imgW = panels.reduce((a, p) => a + p.image.width * scale, 0) + gap * (panels.length - 1);
  const width = Math.max(imgW, 240);
  const font = Math.max(12, Math.min(24, Math.round(width / 45)));
  const pad = Math.round(font * 0.6);
  const lineH = Math.round(font * 1.3);
  const inner = width - 2 * pad;
  const header = [...(opts.title ? wrapText(opts.title, inner, font) : []), ...(opts.query ? wrapText(`Query: ${opts.query}`, inner, font) : [])];
  const entries = opts.legend === false ? [] : legendEntries(panels);
  const legend = legendRows(entries, width, font, pad);
  const footer = opts.caption ? wrapText(`Caption: ${opts.caption}`, inner, font) : [];
  const labelH = panels.some(p => p.label) ? lineH : 0;
  const headH = header.length ? 2 * pad + header.length * lineH : 0;
  const footLines = footer.length + legend.length;
  const footH = footLines ? 2 * pad + footLines * lineH : 0;
  const top = headH + labelH;
  let left = Math.floor((width - imgW) / 2);
  const placed = panels.map(p => {
    const r = { left, top, width: p.image.width * scale, height: p.image.height * scale };
    left += r.width + gap;
    return r;
  });
  const imgH = Math.max(...placed.map(r => r.height));
  return { width, height: top + imgH + footH, scale, font, panels: placed, header, footer, pad, lineH, labelH, legend, entries };
}

/** RGB copy of an image (grey and alpha dropped to RGB) */
function toRgb(img: ImageU8): Uint8Array {
  const { width: w, height: h, channels: ch, data } = img;
  if (ch === 3) return new Uint8Array(data);
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * ch + (ch === 1 ? 0 : c)];
  return out;
}

/** nearest-neighbour enlargement of an RGB buffer or a mask by a whole factor */
function enlarge<T extends Uint8Array>(src: T, w: number, h: number, ch: number, s: number): T {
  if (s === 1) return src;
  const out = new Uint8Array(w * s * h * s * ch) as T;
  for (let y = 0; y < h * s; y++) for (let x = 0; x < w * s; x++) {
    const i = ((y / s) | 0) * w + ((x / s) | 0);
    for (let c = 0; c < ch; c++) out[(y * w * s + x) * ch + c] = src[i * ch + c];
  }
  return out;
}

/** the pixels of `mask` within `t` px (chessboard) of its outside or the image border */
export function maskOutline(mask: ArrayLike<number>, w: number, h: number, t: number): Uint8Array {
  const INF = 1 << 20;
  const d = new Int32Array(w * h);
  for (let i = 0; i < w * h; i++) d[i] = mask[i] ? INF : 0;
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : d[y * w + x]);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (d[y * w + x]) d[y * w + x] = Math.min(d[y * w + x], at(x - 1, y) + 1, at(x, y - 1) + 1, at(x - 1, y - 1) + 1, at(x + 1, y - 1) + 1);
  for (let y = h - 1; y >= 0; y--) for (let x = w - 1; x >= 0; x--) if (d[y * w + x]) d[y * w + x] = Math.min(d[y * w + x], at(x + 1, y) + 1, at(x, y + 1) + 1, at(x + 1, y + 1) + 1, at(x - 1, y + 1) + 1);
  const out = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) out[i] = d[i] > 0 && d[i] <= t ? 1 : 0;
  return out;
}

function paint(rgb: Uint8Array, where: Uint8Array, col: Rgb, alpha = 1): void {
  for (let i = 0; i < where.length; i++) if (where[i]) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = alpha === 1 ? col[c] : Math.round(rgb[i * 3 + c] * (1 - alpha) + col[c] * alpha);
}

const textLine = (x: number, y: number, s: string, font: number, extra = '') => `<text x="${x}" y="${y}" font-family="${FONT}" font-size="${font}" fill="white"${extra}>${escapeXml(s)}</text>`;

/** Several image panels side by side under one title band (heading, query) and over one caption/legend band. */
export async function overlaySheetPng(panels: OverlayPanel[], opts: SheetOptions = {}): Promise<Buffer> {
  const L = sheetLayout(panels, opts);
  const s = L.scale;
  const stroke = Math.max(2, Math.round(Math.min(...L.panels.map(r => Math.min(r.width, r.height))) / 160));
  const layers: sharp.OverlayOptions[] = [];
  const svg: string[] = [];
  panels.forEach((p, k) => {
    const { width: w, height: h } = p.image;
    const r = L.panels[k];
    const col = p.color ?? PRED_COLOR;
    const small = toRgb(p.image);
    if (p.mask) paint(small, p.mask, col, 0.5);
    if (p.groundTruth?.mask && p.groundTruth.fill) paint(small, p.groundTruth.mask, GT_COLOR, 0.5);
    const rgb = enlarge(small, w, h, 3, s);
    if (p.mask) paint(rgb, maskOutline(enlarge(p.mask, w, h, 1, s), w * s, h * s, Math.max(1, stroke - 1)), col);
    if (p.groundTruth?.mask) paint(rgb, maskOutline(enlarge(p.groundTruth.mask, w, h, 1, s), w * s, h * s, stroke), GT_COLOR);
    layers.push({ input: Buffer.from(rgb), raw: { width: w * s, height: h * s, channels: 3 }, left: r.left, top: r.top });
    const X = (v: number) => (r.left + v * s).toFixed(1);
    const Y = (v: number) => (r.top + v * s).toFixed(1);
    const rect = (b: number[], c: Rgb, dash: string) => `<rect x="${X(b[0])}" y="${Y(b[1])}" width="${(Math.max(0, b[2] - b[0]) * s).toFixed(1)}" height="${(Math.max(0, b[3] - b[1]) * s).toFixed(1)}" fill="none" stroke="${css(c)}" stroke-width="${stroke}"${dash}/>`;
    svg.push(`<svg x="${r.left}" y="${r.top}" width="${r.width}" height="${r.height}" overflow="hidden"><g transform="translate(${-r.left},${-r.top})">`);
    if (p.groundTruth?.box) svg.push(rect(p.groundTruth.box, GT_COLOR, ` stroke-dasharray="${stroke * 3} ${stroke * 2}"`));
    if (p.bbox) svg.push(rect(p.bbox, col, ''));
    for (const q of p.points ?? []) svg.push(`<circle cx="${X(q[0])}" cy="${Y(q[1])}" r="${stroke * 2.5}" fill="${css(POINT_COLOR)}" stroke="black" stroke-width="${Math.max(1, stroke / 2)}"/>`);
    svg.push('</g></svg>');
    if (p.label) svg.push(textLine(r.left + r.width / 2, r.top - L.lineH * 0.3, p.label, Math.round(L.font * 0.85), ' text-anchor="middle" fill-opacity="0.85"'));
  });
  const { pad, lineH, font } = L;
  L.header.forEach((t, i) => svg.push(textLine(pad, pad + i * lineH + font, t, font, i === 0 && opts.title ? ' font-weight="bold"' : '')));
  const footTop = L.panels[0].top + Math.max(...L.panels.map(r => r.height)) + pad;
  L.footer.forEach((t, i) => svg.push(textLine(pad, footTop + i * lineH + font, t, font)));
  L.legend.forEach((row, j) => {
    const y = footTop + (L.footer.length + j) * lineH;
    for (const [e, x] of row) svg.push(L.entries[e].svg(x, y + (lineH - font) / 2 + 1, font), textLine(x + font * 1.6, y + font, L.entries[e].name, font, ' fill-opacity="0.9"'));
  });
  const doc = `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}">${svg.join('')}</svg>`;
  layers.push({ input: Buffer.from(doc), left: 0, top: 0 });
  return sharp({ create: { width: L.width, height: L.height, channels: 3, background: BAND } }).composite(layers).png().toBuffer();
}

/**
 * One image with the prediction (mask tinted and outlined, box, points) and, when given, the
 * ground truth (mask outline, dashed box), the query in a band above and the caption and a legend
 * in a band below.
 */
export async function overlayPng(img: ImageU8, opts: OverlayOptions = {}): Promise<Buffer> {
  const { mask, bbox, points, groundTruth, color, ...sheet } = opts;
  return overlaySheetPng([{ image: img, mask, bbox, points, groundTruth, color }], sheet);
}

export function saveBuffer(file: string, b: Buffer): void {
  writeFileAtomic(file, b);
}
