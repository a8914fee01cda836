/**
 * ReasonSeg in its original layout: one image (.jpg/.png) and one .json per sample, the JSON with
 * `text` (queries), `is_sentence`, and `shapes` of polygons. The label mask is filled as LISA's loader
 * and Seg-Zero's `create_reasonseg_hf.py` do: vertices cast to int32 (truncated), polygons sorted by
 * area (largest first), 'flag' shapes skipped, shapes whose label contains 'ignore' marked 255.
 * The target the released evaluation scores is that mask `.astype(bool)`: ignore regions count as
 * **target** (REFERENCE §8.4), the default here; `ignore: 'background'` drops them instead.
 * Only `text[0]` is used (one query per image). A malformed sample is skipped with its reason.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadImage } from '../io/image.ts';
import type { EvalSample, Skipped } from './types.ts';

export type { Skipped } from './types.ts';

/** Fill a polygon (pixel centres inside, even-odd) plus its outline, with `value`. */
export function fillPolygon(mask: Uint8Array, w: number, h: number, pts: number[][], value: number): void {
  const n = pts.length;
  const ys = pts.map(p => p[1]);
  const y0 = Math.max(0, Math.floor(Math.min(...ys)));
  const y1 = Math.min(h - 1, Math.ceil(Math.max(...ys)));
  for (let y = y0; y <= y1; y++) {
    const yc = y + 0.5;
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const [ax, ay] = pts[i];
      const [bx, by] = pts[(i + 1) % n];
      if ((ay <= yc && by > yc) || (by <= yc && ay > yc)) xs.push(ax + ((yc - ay) / (by - ay)) * (bx - ax));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      for (let x = Math.max(0, Math.ceil(xs[k] - 0.5)); x <= Math.min(w - 1, Math.floor(xs[k + 1] - 0.5)); x++) mask[y * w + x] = value;
    }
  }
  // the outline (cv2.polylines with thickness 1), integer vertices
  for (let i = 0; i < n; i++) {
    let [x0, yy0] = pts[i].map(Math.round);
    const [x1, yy1] = pts[(i + 1) % n].map(Math.round);
    const dx = Math.abs(x1 - x0), dy = -Math.abs(yy1 - yy0), sx = x0 < x1 ? 1 : -1, sy = yy0 < yy1 ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      if (x0 >= 0 && yy0 >= 0 && x0 < w && yy0 < h) mask[yy0 * w + x0] = value;
      if (x0 === x1 && yy0 === yy1) break;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; yy0 += sy; }
    }
  }
}

interface Shape { label?: unknown; points?: unknown }

/** LISA's label mask: 0 background, 1 target, 255 ignore. */
export function maskFromAnnotation(anno: { shapes?: unknown }, w: number, h: number): Uint8Array {
  if (!Array.isArray(anno.shapes)) throw new Error("no 'shapes' list");
  const valid: { pts: number[][]; label: string; area: number }[] = [];
  for (const s of anno.shapes as Shape[]) {
    const label = String(s.label ?? '');
    if (label.toLowerCase() === 'flag') continue;
    if (!Array.isArray(s.points) || s.points.length < 3 || !s.points.every(p => Array.isArray(p) && p.length >= 2 && p.every(Number.isFinite))) throw new Error(`shape '${label}' has no valid polygon`);
    // np.array([points], dtype=np.int32): each coordinate truncated toward zero
    const pts = (s.points as number[][]).map(p => [Math.trunc(p[0]), Math.trunc(p[1])]);
    const tmp = new Uint8Array(w * h);
    fillPolygon(tmp, w, h, pts, 1);
    valid.push({ pts, label, area: tmp.reduce((a, b) => a + b, 0) });
  }
  valid.sort((a, b) => b.area - a.area);
  const mask = new Uint8Array(w * h);
  for (const v of valid) fillPolygon(mask, w, h, v.pts, v.label.toLowerCase().includes('ignore') ? 255 : 1);
  return mask;
}

export interface ReasonSegOptions {
  /**
   * What LISA's 'ignore' regions (255) are in the target mask:
   * - 'target' (default): part of the target, as the released evaluation's data (`Ricky06662/ReasonSeg_*`,
   *   built by `create_reasonseg_hf.py` with `mask.astype(bool)`) has them;
   * - 'background': removed from the target (this project's behaviour before issue 17).
   */
  ignore?: 'target' | 'background';
}

/** The 0/1 target of a LISA label mask (0/1/255), in place. */
export function reasonSegTarget(labels: Uint8Array, ignore: 'target' | 'background' = 'target'): Uint8Array {
  if (ignore !== 'target' && ignore !== 'background') throw new Error(`reasonseg: option 'ignore' must be 'target' or 'background', got '${ignore}'`);
  const keep = ignore === 'target' ? 1 : 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 255) labels[i] = keep;
  return labels;
}

/** Samples of a ReasonSeg folder; `skipped` collects every malformed one with its reason. */
export async function* reasonSegSamples(dir: string, skipped: Skipped[], opts: ReasonSegOptions = {}): AsyncGenerator<EvalSample> {
  const ignore = opts.ignore ?? 'target';
  reasonSegTarget(new Uint8Array(0), ignore);
  const files = fs.readdirSync(dir).filter(f => f.endsWith('.json')).sort();
  for (const f of files) {
    const id = f.replace(/\.json$/, '');
    const img = ['.jpg', '.jpeg', '.png'].map(e => path.join(dir, id + e)).find(p => fs.existsSync(p));
    try {
      if (!img) throw new Error('no image beside the JSON');
      const anno = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      const texts = Array.isArray(anno.text) ? anno.text : [anno.text];
      if (typeof texts[0] !== 'string' || !texts[0]) throw new Error("no query in 'text'");
      const image = await loadImage(img);
      const mask = reasonSegTarget(maskFromAnnotation(anno, image.width, image.height), ignore);
      yield { id, image, query: texts[0], mask, labels: { kind: anno.is_sentence ? 'sentence' : 'phrase' } };
    } catch (e) {
      skipped.push({ id, reason: (e as Error).message });
    }
  }
}

export function countReasonSeg(dir: string): number {
  return fs.readdirSync(dir).filter(f => f.endsWith('.json')).length;
}
