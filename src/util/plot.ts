/**
 * Plots as SVG (and PNG through sharp): line plots, small multiples and bar charts with error
 * bars, each with nice round ticks on both axes, axis labels, a legend under the axes (it never
 * covers data) and a distinct colour per series. Also the text helpers the overlays share: a
 * width estimate for DejaVu Sans and word wrapping on it.
 */
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
  /** an SVG stroke-dasharray, e.g. '6 3'; series past the palette get one automatically */
  dash?: string;
}

export interface PlotOptions {
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** categorical x axis: the label of x = 0, 1, 2, ... */
  xTicks?: string[];
  /** force the y range to include these (e.g. 0) */
  yInclude?: number[];
}

export const FONT = 'DejaVu Sans, Verdana, sans-serif';
/** matplotlib's tab10: ten colours told apart also in print */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const DASHES = ['', '6 3', '2 2', '8 3 2 3'];

/** the colour and dash of series i: ten colours, then the same colours dashed */
export function seriesStyle(i: number): { color: string; dash: string } {
  return { color: PALETTE[i % PALETTE.length], dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length] };
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

// DejaVu Sans advance widths in em (from its hmtx table, rounded); others count as 0.7 em (wide ones 1 em)
const ADV: Record<string, number> = { ' ': 0.318, i: 0.278, j: 0.278, l: 0.278, f: 0.352, t: 0.392, r: 0.411, s: 0.521, z: 0.525, c: 0.55, k: 0.579, v: 0.592, x: 0.592, y: 0.592, m: 0.974, w: 0.818, I: 0.295, J: 0.295, L: 0.557, F: 0.575, T: 0.611, Y: 0.611, E: 0.632, P: 0.603, K: 0.656, A: 0.684, B: 0.686, R: 0.695, C: 0.698, V: 0.684, X: 0.685, Z: 0.685, U: 0.732, N: 0.748, H: 0.752, D: 0.77, G: 0.775, O: 0.787, Q: 0.787, M: 0.863, W: 0.989, '.': 0.318, ',': 0.318, ':': 0.337, ';': 0.337, '!': 0.4, '?': 0.531, "'": 0.275, '"': 0.46, '(': 0.39, ')': 0.39, '[': 0.39, ']': 0.39, '{': 0.636, '}': 0.636, '-': 0.361, _: 0.5, '/': 0.337, '\\': 0.337, '|': 0.337, '%': 0.95, '*': 0.5, '#': 0.838, '&': 0.78, '@': 1, '<': 0.838, '>': 0.838, '=': 0.838, '+': 0.838, '~': 0.838, '^': 0.838, '`': 0.5, $: 0.636 };

/** estimated rendered width in px of `s` at `fontSize` px in DejaVu Sans (a little generous) */
export function textWidth(s: string, fontSize: number): number {
  let em = 0;
  for (const ch of s) em += ADV[ch] ?? (/[a-z0-9]/.test(ch) ? 0.63 : ch.codePointAt(0)! >= 0x2e80 ? 1 : 0.7);
  return em * fontSize * 1.04;
}

/** word-wrap `s` into lines no wider than `maxWidth` px; a word wider than a line is broken; newlines are kept */
export function wrapText(s: string, maxWidth: number, fontSize: number): string[] {
  const out: string[] = [];
  for (const para of s.split(/\r?\n/)) {
    let line = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      const cand = line ? `${line} ${word}` : word;
      if (textWidth(cand, fontSize) <= maxWidth) { line = cand; continue; }
      if (line) out.push(line);
      line = '';
      let rest = word;
      while (textWidth(rest, fontSize) > maxWidth) {
        let k = 1;
        const chars = [...rest];
        while (k < chars.length && textWidth(chars.slice(0, k + 1).join(''), fontSize) <= maxWidth) k++;
        out.push(chars.slice(0, k).join(''));
        rest = chars.slice(k).join('');
      }
      line = rest;
    }
    out.push(line);
  }
  return out;
}

/** a round tick step (1, 2, 2.5 or 5 x 10^k) giving about `target` intervals over `span` */
export function niceStep(span: number, target = 5): number {
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 2.25 ? 2 : f < 3.5 ? 2.5 : f < 7.5 ? 5 : 10) * p;
}

/** decimals needed to print multiples of `step` exactly */
function decimalsOf(step: number): number {
  for (let d = 0; d < 12; d++) {
    const x = step * 10 ** d;
    if (x >= 0.999 && Math.abs(Math.round(x) - x) < 1e-6 * x) return d;
  }
  return 12;
}

/** a tick label: plain decimals, or `2.5e-7` for tiny values and huge steps */
export function formatTick(v: number, step: number): string {
  if (step > 0 && ((step < 1e-4 && Math.abs(v) < 1e-3) || step >= 1e7)) {
    if (v === 0) return '0';
    const e = Math.floor(Math.log10(step));
    const mant = Number((v / 10 ** e).toFixed(decimalsOf(step / 10 ** e)));
    return `${mant}e${e}`;
  }
  const s = v.toFixed(decimalsOf(step));
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

/** round ticks covering [lo, hi]; `lo`/`hi` are widened to the outer ticks */
export function niceTicks(lo: number, hi: number, target = 5, integer = false): { lo: number; hi: number; step: number; ticks: number[] } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = lo === 0 ? [0, 1] : [lo - Math.abs(lo) * 0.1, hi + Math.abs(hi) * 0.1];
  let step = niceStep(hi - lo, target);
  if (integer) step = Math.max(1, Math.round(step));
  const a = Math.floor(lo / step + 1e-9);
  const b = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = a; k <= b; k++) ticks.push(Number((k * step).toPrecision(12)));
  return { lo: a * step, hi: b * step, step, ticks };
}

/** ticks inside [lo, hi] without widening (for an x axis over the data range) */
function innerTicks(lo: number, hi: number, target: number, integer: boolean): { ticks: number[]; step: number } {
  const { step, ticks } = niceTicks(lo, hi, target, integer);
  return { step, ticks: ticks.filter(t => t >= lo - 1e-9 && t <= hi + 1e-9) };
}

const txt = (x: number, y: number, s: string, size: number, extra = '') => `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" font-size="${size}"${extra}>${escapeXml(s)}</text>`;

interface LegendItem { name: string; color: string; dash?: string; kind: 'line' | 'point' | 'box' | 'whisker' }

/** a legend flowing in rows across `width` px from (x, y); returns the SVG and its height */
function legendSvg(items: LegendItem[], x: number, y: number, width: number, size = 11): { svg: string; height: number } {
  const parts: string[] = [];
  const rowH = size + 6;
  let cx = x;
  let row = 0;
  for (const it of items) {
    const w = 22 + textWidth(it.name, size) + 14;
    if (cx > x && cx + w > x + width) { cx = x; row++; }
    const cy = y + row * rowH + rowH / 2;
    if (it.kind === 'line') parts.push(`<line x1="${cx}" x2="${cx + 18}" y1="${cy}" y2="${cy}" stroke="${it.color}" stroke-width="2.5"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`);
    else if (it.kind === 'point') parts.push(`<circle cx="${cx + 9}" cy="${cy}" r="3.5" fill="${it.color}"/>`);
    else if (it.kind === 'box') parts.push(`<rect x="${cx + 3}" y="${cy - 5}" width="12" height="10" fill="${it.color}"/>`);
    else parts.push(`<path d="M${cx + 9} ${cy - 6}V${cy + 6}M${cx + 5} ${cy - 6}H${cx + 13}M${cx + 5} ${cy + 6}H${cx + 13}" stroke="${it.color}" stroke-width="1.5" fill="none"/>`);
    parts.push(txt(cx + 22, cy + size * 0.36, it.name, size, ' fill="#222"'));
    cx += w;
  }
  return { svg: `<g class="legend">${parts.join('')}</g>`, height: items.length ? (row + 1) * rowH : 0 };
}

function legendHeight(items: LegendItem[], width: number): number {
  return legendSvg(items, 0, 0, width).height;
}

/** one line plot as an SVG fragment of W x H px at the origin (for lineSvg and small multiples) */
export function linePanel(title: string, series: Series[], opts: PlotOptions, W: number, H: number, clipId = 'plotarea'): string {
  const styled = series.map((s, i) => ({ ...s, color: s.color ?? seriesStyle(i).color, dash: s.dash ?? (s.color ? '' : seriesStyle(i).dash) }));
  const items: LegendItem[] = styled.map(s => ({ name: s.name, color: s.color, dash: s.dash, kind: s.style === 'points' ? 'point' : 'line' }));
  const legH = legendHeight(items, W - 70);
  const m = { l: 62, r: 18, t: title ? 30 : 12, b: 46 + (legH ? legH + 6 : 0) };
  const xs = styled.flatMap(s => s.x).filter(Number.isFinite);
  const ys = styled.flatMap(s => [...s.y, ...(s.band?.lo ?? []), ...(s.band?.hi ?? [])]).filter(Number.isFinite);
  const yr = niceTicks(Math.min(...ys, ...(opts.yInclude ?? []), ys.length ? Infinity : 0), Math.max(...ys, ...(opts.yInclude ?? []), ys.length ? -Infinity : 1), Math.max(3, Math.round((H - m.t - m.b) / 50)));
  // the left margin fits the longest tick label beside the rotated axis label
  m.l = Math.max(m.l, Math.ceil(28 + Math.max(...yr.ticks.map(t => textWidth(formatTick(t, yr.step), 10)))));
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  // dots at the ends would be cut in half: a small margin for scatters
  if (styled.some(s => s.style === 'points')) [x0, x1] = [x0 - (x1 - x0) * 0.015, x1 + (x1 - x0) * 0.015];
  if (opts.xTicks) [x0, x1] = [-0.5, opts.xTicks.length - 0.5];
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => m.t + ph - ((y - yr.lo) / (yr.hi - yr.lo)) * ph;
  const parts = [title ? txt(W / 2, 20, title, 14, ' text-anchor="middle" fill="#111"') : ''];
  for (const t of yr.ticks) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#e4e4e4"/>`);
    parts.push(`<line x1="${m.l - 4}" x2="${m.l}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#444"/>`, txt(m.l - 7, py(t) + 3.5, formatTick(t, yr.step), 10, ' text-anchor="end" class="ytick"'));
  }
  const axisY = m.t + ph;
  if (opts.xTicks) opts.xTicks.forEach((t, i) => parts.push(`<line x1="${px(i)}" x2="${px(i)}" y1="${axisY}" y2="${axisY + 4}" stroke="#444"/>`, txt(px(i), axisY + 15, t, 10, ' text-anchor="middle" class="xtick"')));
  else {
    const integer = xs.every(Number.isInteger);
    const xt = innerTicks(x0, x1, Math.max(3, Math.round(pw / 80)), integer);
    for (const t of xt.ticks) parts.push(`<line x1="${px(t).toFixed(1)}" x2="${px(t).toFixed(1)}" y1="${axisY}" y2="${axisY + 4}" stroke="#444"/>`, txt(px(t), axisY + 15, formatTick(t, xt.step), 10, ' text-anchor="middle" class="xtick"'));
  }
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${axisY}" stroke="#444"/>`, `<line x1="${m.l}" x2="${W - m.r}" y1="${axisY}" y2="${axisY}" stroke="#444"/>`);
  parts.push(txt(m.l + pw / 2, axisY + 32, opts.xLabel ?? 'step', 11, ' text-anchor="middle" class="xlabel"'));
  if (opts.yLabel) parts.push(txt(14, m.t + ph / 2, opts.yLabel, 11, ` text-anchor="middle" class="ylabel" transform="rotate(-90 14 ${(m.t + ph / 2).toFixed(1)})"`));
  parts.push(`<clipPath id="${clipId}"><rect x="${m.l}" y="${m.t - 3}" width="${pw}" height="${ph + 6}"/></clipPath><g clip-path="url(#${clipId})">`);
  for (const s of styled) {
    const idx = s.x.map((_, j) => j);
    if (s.band) {
      const ok = idx.filter(j => Number.isFinite(s.band!.lo[j]) && Number.isFinite(s.band!.hi[j]));
      const up = ok.map(j => `${px(s.x[j]).toFixed(1)},${py(s.band!.hi[j]).toFixed(1)}`);
      const down = ok.map(j => `${px(s.x[j]).toFixed(1)},${py(s.band!.lo[j]).toFixed(1)}`).reverse();
      if (ok.length) parts.push(`<polygon fill="${s.color}" fill-opacity="0.2" stroke="none" points="${[...up, ...down].join(' ')}"/>`);
    }
    if (s.style === 'points') {
      for (const j of idx) if (Number.isFinite(s.y[j])) parts.push(`<circle cx="${px(s.x[j]).toFixed(1)}" cy="${py(s.y[j]).toFixed(1)}" r="2.5" fill="${s.color}" fill-opacity="0.7"/>`);
      continue;
    }
    // a gap (NaN) breaks the line; a lone point gets a dot
    const runs: number[][] = [[]];
    for (const j of idx) if (Number.isFinite(s.y[j])) runs[runs.length - 1].push(j); else if (runs[runs.length - 1].length) runs.push([]);
    for (const r of runs) {
      if (r.length === 1) parts.push(`<circle cx="${px(s.x[r[0]]).toFixed(1)}" cy="${py(s.y[r[0]]).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
      else if (r.length) parts.push(`<polyline class="series" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${r.map(j => `${px(s.x[j]).toFixed(1)},${py(s.y[j]).toFixed(1)}`).join(' ')}"/>`);
    }
  }
  parts.push('</g>');
  if (legH) parts.push(legendSvg(items, m.l, H - legH - 4, W - 70).svg);
  return parts.join('');
}

const svgDoc = (W: number, H: number, body: string) => `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"><rect width="${W}" height="${H}" fill="white"/>${body}</svg>`;

export function lineSvg(title: string, series: Series[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 380;
  return svgDoc(W, H, linePanel(title, series, opts, W, H));
}

export interface Panel {
  title: string;
  series: Series[];
  opts?: PlotOptions;
}

/** small multiples: panels in a grid of `cols` columns under one title */
export function gridSvg(title: string, panels: Panel[], layout: { cols?: number; panelWidth?: number; panelHeight?: number } = {}): string {
  const cols = Math.max(1, Math.min(layout.cols ?? 2, panels.length));
  const pw = layout.panelWidth ?? 460;
  const ph = layout.panelHeight ?? 300;
  const top = title ? 34 : 0;
  const rows = Math.ceil(panels.length / cols);
  const body = [title ? txt((cols * pw) / 2, 23, title, 16, ' text-anchor="middle" font-weight="bold" fill="#111"') : ''];
  panels.forEach((p, i) => body.push(`<g transform="translate(${(i % cols) * pw},${top + Math.floor(i / cols) * ph})">${linePanel(p.title, p.series, p.opts ?? {}, pw, ph, `panel${i}`)}</g>`));
  return svgDoc(cols * pw, top + rows * ph, body.join(''));
}

export interface BarSeries {
  name: string;
  /** one value per category */
  values: number[];
  /** the error bar half-length per category (e.g. the std); none drawn when absent or not finite */
  errors?: number[];
  color?: string;
}

export interface BarOptions {
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** a second label line per category, e.g. 'n = 30' */
  notes?: string[];
  /** what the error bars are, for the legend (default 'error bars: ± 1 std') */
  errorLabel?: string;
}

/** a bar chart: one group of bars per category, one bar per series, error bars as whiskers with caps */
export function barSvg(title: string, categories: string[], series: BarSeries[], opts: BarOptions = {}): string {
  const W = opts.width ?? Math.max(480, 90 + categories.length * Math.max(48, 22 * series.length + 20));
  const H0 = opts.height ?? 380;
  const items: LegendItem[] = series.map((s, i) => ({ name: s.name, color: s.color ?? seriesStyle(i).color, kind: 'box' as const }));
  if (series.some(s => s.errors)) items.push({ name: opts.errorLabel ?? 'error bars: ± 1 std', color: '#222', kind: 'whisker' });
  const m = { l: 62, r: 18, t: 32, b: 0 };
  let slot = (W - m.l - m.r) / Math.max(1, categories.length);
  // labels wrap under their bar; one with a word wider than the bar is drawn slanted instead
  const fits = categories.every(c => c.split(/\s+/).every(w => textWidth(w, 10) <= slot - 4));
  const labelLines = categories.map(c => (fits ? wrapText(c, slot - 4, 10) : [c]));
  if (!fits && categories.length) m.l = Math.max(m.l, Math.ceil(textWidth(categories[0], 10) * 0.82 - slot / 2 + 8));
  slot = (W - m.l - m.r) / Math.max(1, categories.length);
  const labelH = fits ? 12 * Math.max(1, ...labelLines.map(l => l.length)) + 2 : Math.max(...categories.map(c => textWidth(c, 10))) * 0.58 + 12;
  const legH = legendHeight(items, W - 70);
  m.b = labelH + (opts.notes ? 13 : 0) + 32 + (legH ? legH + 6 : 0);
  const H = H0 + Math.max(0, Math.round(labelH - 14));
  const ph = H - m.t - m.b;
  const vals = series.flatMap(s => s.values.flatMap((v, j) => { const e = s.errors?.[j]; return Number.isFinite(e) ? [v - e!, v + e!] : [v]; })).filter(Number.isFinite);
  const yr = niceTicks(Math.min(0, ...vals), Math.max(0, ...vals), Math.max(3, Math.round(ph / 50)));
  const py = (y: number) => m.t + ph - ((y - yr.lo) / (yr.hi - yr.lo)) * ph;
  const axisY = m.t + ph;
  const parts = [txt(W / 2, 20, title, 14, ' text-anchor="middle" fill="#111"')];
  for (const t of yr.ticks) parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#e4e4e4"/>`, `<line x1="${m.l - 4}" x2="${m.l}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#444"/>`, txt(m.l - 7, py(t) + 3.5, formatTick(t, yr.step), 10, ' text-anchor="end" class="ytick"'));
  const bw = Math.min(60, (slot * 0.8) / Math.max(1, series.length));
  categories.forEach((c, i) => {
    const cx = m.l + slot * (i + 0.5);
    series.forEach((s, k) => {
      const v = s.values[i];
      if (!Number.isFinite(v)) return;
      const x = cx - (bw * series.length) / 2 + k * bw;
      const col = s.color ?? seriesStyle(k).color;
      const [ya, yb] = [py(Math.max(0, v)), py(Math.min(0, v))];
      parts.push(`<rect class="bar" x="${(x + 1).toFixed(1)}" y="${ya.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${Math.max(0, yb - ya).toFixed(1)}" fill="${col}" fill-opacity="0.85"/>`);
      const e = s.errors?.[i];
      if (Number.isFinite(e) && e! > 0) {
        const ex = x + bw / 2;
        const cap = Math.min(8, bw / 3);
        parts.push(`<g class="errorbar" stroke="#222" stroke-width="1.5"><line x1="${ex.toFixed(1)}" x2="${ex.toFixed(1)}" y1="${py(v - e!).toFixed(1)}" y2="${py(v + e!).toFixed(1)}"/><line x1="${(ex - cap).toFixed(1)}" x2="${(ex + cap).toFixed(1)}" y1="${py(v + e!).toFixed(1)}" y2="${py(v + e!).toFixed(1)}"/><line x1="${(ex - cap).toFixed(1)}" x2="${(ex + cap).toFixed(1)}" y1="${py(v - e!).toFixed(1)}" y2="${py(v - e!).toFixed(1)}"/></g>`);
      }
    });
    if (fits) labelLines[i].forEach((l, k) => parts.push(txt(cx, axisY + 15 + 12 * k, l, 10, ' text-anchor="middle" class="xtick"')));
    else parts.push(txt(cx + 3, axisY + 12, c, 10, ` text-anchor="end" class="xtick" transform="rotate(-35 ${(cx + 3).toFixed(1)} ${(axisY + 12).toFixed(1)})"`));
    if (opts.notes?.[i]) parts.push(txt(cx, axisY + labelH + 13, opts.notes[i], 9, ' text-anchor="middle" fill="#555"'));
  });
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${axisY}" stroke="#444"/>`, `<line x1="${m.l}" x2="${W - m.r}" y1="${py(0).toFixed(1)}" y2="${py(0).toFixed(1)}" stroke="#444"/>`);
  if (opts.xLabel) parts.push(txt(m.l + (W - m.l - m.r) / 2, axisY + labelH + (opts.notes ? 13 : 0) + 22, opts.xLabel, 11, ' text-anchor="middle" class="xlabel"'));
  if (opts.yLabel) parts.push(txt(m.l - 48, m.t + ph / 2, opts.yLabel, 11, ` text-anchor="middle" class="ylabel" transform="rotate(-90 ${m.l - 48} ${(m.t + ph / 2).toFixed(1)})"`));
  if (legH) parts.push(legendSvg(items, m.l, H - legH - 4, W - 70).svg);
  return svgDoc(W, H, parts.join(''));
}

/** Write `<base>.svg` and `<base>.png` atomically. */
export async function writeSvg(base: string, svg: string): Promise<void> {
  writeFileAtomic(`${base}.svg`, svg);
  writeFileAtomic(`${base}.png`, await sharp(Buffer.from(svg)).png().toBuffer());
}

/** a line plot as `<base>.svg` and `<base>.png` */
export async function writePlot(base: string, title: string, series: Series[], opts: PlotOptions = {}): Promise<void> {
  await writeSvg(base, lineSvg(title, series, opts));
}

/** a bar chart as `<base>.svg` and `<base>.png` */
export async function writeBars(base: string, title: string, categories: string[], series: BarSeries[], opts: BarOptions = {}): Promise<void> {
  await writeSvg(base, barSvg(title, categories, series, opts));
}
