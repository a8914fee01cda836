/**
 * Overlays of the N worst samples of an evaluation (lowest IoU, ties by id), kept up to date as
 * samples complete: worst/<id>.png shows, under a band with the IoU (as a percentage), the id and
 * the query, the prediction (mask, box, points, with the ground truth outlined) beside the ground
 * truth alone, over a band with the caption (wrapped, never cut) and a legend; worst/index.md lists
 * them by rank. A resumed run keeps the files of earlier runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import type { ImageU8 } from '../io/resample.ts';
import { overlaySheetPng } from '../pipeline/overlay.ts';

export interface WorstEntry {
  id: string;
  query: string;
  iou: number;
}

const fileOf = (id: string) => `${id.replace(/[^A-Za-z0-9._-]/g, '_')}.png`;

/** an IoU in [0, 1] as a percentage with one decimal, e.g. '42.3%' */
export const percent = (iou: number) => `${(iou * 100).toFixed(1)}%`;

export class WorstSamples {
  readonly dir: string;
  readonly n: number;
  private entries: WorstEntry[];

  constructor(outDir: string, n: number, done: WorstEntry[]) {
    this.dir = path.join(outDir, 'worst');
    this.n = n;
    this.entries = [...done].sort(WorstSamples.order).slice(0, n);
  }

  static order(a: WorstEntry, b: WorstEntry): number {
    return a.iou - b.iou || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  /** would this sample be among the worst N? */
  admits(e: WorstEntry): boolean {
    if (this.n <= 0) return false;
    if (this.entries.length < this.n) return true;
    return WorstSamples.order(e, this.entries[this.entries.length - 1]) < 0;
  }

  async add(e: WorstEntry, image: ImageU8, pred: { mask: Uint8Array | null; bbox: number[] | null; points: number[][] | null; caption: string | null }, gt: Uint8Array): Promise<void> {
    if (!this.admits(e)) return;
    fs.mkdirSync(this.dir, { recursive: true });
    const png = await overlaySheetPng([
      { image, label: 'prediction', mask: pred.mask, bbox: pred.bbox, points: pred.points, groundTruth: { mask: gt } },
      { image, label: 'ground truth', groundTruth: { mask: gt, fill: true } },
    ], { title: `IoU ${percent(e.iou)} · ${e.id}${pred.mask ? '' : ' · no mask predicted'}`, query: e.query, caption: pred.caption ?? '(no caption)' });
    writeFileAtomic(path.join(this.dir, fileOf(e.id)), png);
    this.entries = [...this.entries.filter(x => x.id !== e.id), e].sort(WorstSamples.order);
    for (const gone of this.entries.splice(this.n)) fs.rmSync(path.join(this.dir, fileOf(gone.id)), { force: true });
  }

  /** worst/index.md, by rank; returns the entries */
  writeIndex(): WorstEntry[] {
    if (!this.entries.length) return [];
    fs.mkdirSync(this.dir, { recursive: true });
    const lines = ['# Worst samples (lowest IoU)', '', '| rank | id | IoU (%) | query | overlay |', '|---|---|---|---|---|'];
    this.entries.forEach((e, i) => lines.push(`| ${i + 1} | ${e.id} | ${(e.iou * 100).toFixed(1)} | ${e.query.replace(/\|/g, '\\|')} | ![](${fileOf(e.id)}) |`));
    writeFileAtomic(path.join(this.dir, 'index.md'), lines.join('\n') + '\n');
    return this.entries;
  }
}
