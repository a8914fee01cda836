/** Line plots as SVG (and PNG through sharp): the curves a researcher would otherwise plot by hand. */
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.ts';

export interface Series {
  name: string;
  x: number[];
  y: number[];
  color?: string;
  /** 'line' (default) or 'points' (a scatter) */
  style?: 'line' | 'points';
  /** a shaded band around the line, e.g. mean -/+ std */
  band?: { lo: number[]; hi: number[] };
}

export interface PlotOptions {
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** categorical x axis: the label of x = 0, 1, 2, ... */
  xTicks?: string[];
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

export function lineSvg(title: string, series: Series[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 360;
  const m = { l: 56, r: 16, t: 32, b: 44 };
  const xs = series.flatMap(s => s.x);
  const ys = series.flatMap(s => [...s.y, ...(s.band?.lo ?? []), ...(s.band?.hi ?? [])]).filter(Number.isFinite);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  if (opts.xTicks) [x0, x1] = [-0.5, opts.xTicks.length - 0.5];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const esc = (s: string) => s.replace(/[<>&]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!);
  const parts = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="14">${esc(title)}</text>`];
  for (let k = 0; k <= 4; k++) {
    const yv = y0 + ((y1 - y0) * k) / 4;
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(yv)}" y2="${py(yv)}" stroke="#ddd"/>`, `<text x="${m.l - 6}" y="${py(yv) + 4}" text-anchor="end" font-family="DejaVu Sans, sans-serif" font-size="10">${yv.toPrecision(3)}</text>`);
  }
  opts.xTicks?.forEach((t, i) => parts.push(`<text x="${px(i)}" y="${H - m.b + 14}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="10">${esc(t)}</text>`));
  parts.push(`<text x="${W / 2}" y="${H - 10}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="11">${esc(opts.xLabel ?? 'step')}</text>`);
  if (opts.yLabel) parts.push(`<text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="11">${esc(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const col = s.color ?? PALETTE[i % PALETTE.length];
    const pts = s.x.map((x, j) => [x, s.y[j]] as const).filter(([, y]) => Number.isFinite(y));
    if (s.band) {
      const up = s.x.map((x, j) => `${px(x).toFixed(1)},${py(s.band!.hi[j]).toFixed(1)}`);
      const down = s.x.map((x, j) => `${px(x).toFixed(1)},${py(s.band!.lo[j]).toFixed(1)}`).reverse();
      parts.push(`<polygon fill="${col}" fill-opacity="0.2" stroke="none" points="${[...up, ...down].join(' ')}"/>`);
    }
    if (s.style === 'points') for (const [x, y] of pts) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${col}" fill-opacity="0.7"/>`);
    else if (pts.length) parts.push(`<polyline fill="none" stroke="${col}" stroke-width="2" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<text x="${m.l + 8}" y="${m.t + 14 + i * 14}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="${col}">${esc(s.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
}

/** Write `<base>.svg` and `<base>.png` atomically. */
export async function writePlot(base: string, title: string, series: Series[], opts: PlotOptions = {}): Promise<void> {
  const svg = lineSvg(title, series, opts);
  writeFileAtomic(`${base}.svg`, svg);
  writeFileAtomic(`${base}.png`, await sharp(Buffer.from(svg)).png().toBuffer());
}
