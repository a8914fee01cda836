/**
 * RefCOCO / RefCOCO+ / RefCOCOg in the layout of lichengunc/refer: `refs(<splitBy>).p` (a pickle,
 * parsed by the allowlisted unpickler, never executed), `instances.json` (COCO annotations) and a
 * folder of COCO images. One evaluation sample per referring sentence; the target mask is the
 * annotation's segmentation (polygons, or RLE compressed or not) rasterised at the image size.
 * A malformed ref is skipped and counted with its reason.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvalSample } from './types.ts';
import { loadImage } from '../io/image.ts';
import { unpickle } from '../io/torch.ts';
import { fillPolygon, type Skipped } from './reasonseg.ts';

export interface RefCocoOptions {
  /** the folder holding refs(<splitBy>).p and instances.json, e.g. refer/data/refcocog */
  annDir: string;
  /** the COCO image folder (train2014) */
  imageDir: string;
  /** 'umd' (RefCOCOg's usual split), 'google', 'unc' */
  splitBy?: string;
  /** 'val', 'test', 'train', 'testA', ... */
  split?: string;
}

export interface RefEntry {
  id: string;
  refId: number;
  annId: number;
  imageId: number;
  sentence: string;
  file: string;
  width: number;
  height: number;
  segmentation: unknown;
}

/** pickleparser gives dicts as Map; plain objects are accepted too */
function field(o: unknown, k: string): unknown {
  if (o instanceof Map) return o.get(k);
  if (o && typeof o === 'object') return (o as Record<string, unknown>)[k];
  return undefined;
}

/** Decode COCO RLE counts (a number list, or the compressed string of pycocotools) into a column-major mask. */
export function decodeRle(counts: number[] | string, h: number, w: number): Uint8Array {
  let runs: number[];
  if (typeof counts === 'string') {
    runs = [];
    let p = 0;
    while (p < counts.length) {
      let x = 0;
      let k = 0;
      let more = true;
      while (more) {
        const c = counts.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = (c & 0x20) !== 0;
        p++;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
        if (more && p >= counts.length) throw new Error('compressed RLE string ends inside a number');
      }
      if (runs.length > 2) x += runs[runs.length - 2];
      runs.push(x);
    }
  } else runs = counts;
  const n = h * w;
  const colMajor = new Uint8Array(n);
  let at = 0;
  runs.forEach((r, i) => {
    if (!Number.isInteger(r) || r < 0 || at + r > n) throw new Error(`RLE run ${i} (${r}) overruns the ${w}x${h} mask`);
    if (i % 2 === 1) colMajor.fill(1, at, at + r);
    at += r;
  });
  // COCO stores masks column-major (Fortran order); ours are row-major
  const out = new Uint8Array(n);
  for (let x = 0; x < w; x++) for (let y = 0; y < h; y++) out[y * w + x] = colMajor[x * h + y];
  return out;
}

/** A COCO segmentation (polygon list or RLE) as a row-major mask of w x h. */
export function segmentationMask(seg: unknown, w: number, h: number): Uint8Array {
  if (Array.isArray(seg)) {
    if (!seg.length) throw new Error('empty polygon list');
    const mask = new Uint8Array(w * h);
    for (const poly of seg) {
      if (!Array.isArray(poly) || poly.length < 6 || poly.length % 2 || !poly.every(Number.isFinite)) throw new Error('a polygon is not a flat list of >= 3 x,y pairs');
      const pts: number[][] = [];
      for (let i = 0; i < poly.length; i += 2) pts.push([poly[i], poly[i + 1]]);
      fillPolygon(mask, w, h, pts, 1);
    }
    return mask;
  }
  const counts = field(seg, 'counts');
  const size = field(seg, 'size');
  if ((typeof counts === 'string' || Array.isArray(counts)) && Array.isArray(size) && size.length === 2) {
    if (size[0] !== h || size[1] !== w) throw new Error(`RLE size [${size}] differs from the image's ${h}x${w}`);
    return decodeRle(counts as number[] | string, h, w);
  }
  throw new Error('segmentation is neither polygons nor RLE');
}

/** Parse refs + instances into one entry per sentence of the split; problems go to `skipped`. */
export function refCocoIndex(o: RefCocoOptions, skipped: Skipped[]): RefEntry[] {
  const splitBy = o.splitBy ?? 'umd';
  const split = o.split ?? 'val';
  const refsFile = path.join(o.annDir, `refs(${splitBy}).p`);
  const instFile = path.join(o.annDir, 'instances.json');
  for (const f of [refsFile, instFile]) if (!fs.existsSync(f)) throw new Error(`refcoco: ${f} not found`);
  const refs = unpickle(new Uint8Array(fs.readFileSync(refsFile)), refsFile);
  if (!Array.isArray(refs)) throw new Error(`refcoco: ${refsFile} does not hold a list of refs`);
  const inst = JSON.parse(fs.readFileSync(instFile, 'utf8')) as { images?: { id: number; file_name: string; width: number; height: number }[]; annotations?: { id: number; image_id: number; segmentation: unknown }[] };
  if (!Array.isArray(inst.images) || !Array.isArray(inst.annotations)) throw new Error(`refcoco: ${instFile} lacks 'images' or 'annotations'`);
  const images = new Map(inst.images.map(i => [i.id, i]));
  const anns = new Map(inst.annotations.map(a => [a.id, a]));
  const out: RefEntry[] = [];
  refs.forEach((r, k) => {
    if (field(r, 'split') !== split) return;
    const refId = Number(field(r, 'ref_id') ?? k);
    const annId = Number(field(r, 'ann_id'));
    const ann = anns.get(annId);
    const sents = field(r, 'sentences');
    const where = `ref ${refId}`;
    if (!ann) { skipped.push({ id: where, reason: `ann_id ${annId} is not in instances.json` }); return; }
    const img = images.get(ann.image_id);
    if (!img) { skipped.push({ id: where, reason: `image_id ${ann.image_id} is not in instances.json` }); return; }
    if (!Array.isArray(sents) || !sents.length) { skipped.push({ id: where, reason: 'no sentences' }); return; }
    for (const s of sents) {
      const text = field(s, 'sent') ?? field(s, 'raw');
      const sid = field(s, 'sent_id');
      if (typeof text !== 'string' || !text.trim()) { skipped.push({ id: `${where} sentence ${sid}`, reason: 'empty sentence' }); continue; }
      out.push({ id: `${refId}-${sid}`, refId, annId, imageId: img.id, sentence: text, file: img.file_name, width: img.width, height: img.height, segmentation: ann.segmentation });
    }
  });
  return out;
}

/** Evaluation samples of a RefCOCO-style split, images loaded lazily. */
export async function* refCocoSamples(o: RefCocoOptions, entries: RefEntry[], skipped: Skipped[]): AsyncGenerator<EvalSample> {
  for (const e of entries) {
    try {
      const file = path.join(o.imageDir, e.file);
      if (!fs.existsSync(file)) throw new Error(`image ${file} not found`);
      const image = await loadImage(file);
      if (image.width !== e.width || image.height !== e.height) throw new Error(`image is ${image.width}x${image.height}, instances.json says ${e.width}x${e.height}`);
      yield { id: e.id, image, query: e.sentence, mask: segmentationMask(e.segmentation, e.width, e.height) };
    } catch (err) {
      skipped.push({ id: e.id, reason: (err as Error).message });
    }
  }
}
