/**
 * The demo models' own acceptance measures on the embedded world (RESULTS.md): SAM2's IoU from a
 * box prompt at the image's resolution, CLIP's S1 > S2 rate for the reference caption (the
 * policy's format rewards come from evaluateOnWorld).
 */
import { worldSample, type Split } from '../data/world/generator.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { Sam2Predictor } from '../models/sam2/predictor.ts';
import type { ClipScorer } from '../models/clip/scorer.ts';
import { iouOf, maskIntersectionUnion } from './metrics.ts';

const maskIoU = (a: ArrayLike<number>, b: ArrayLike<number>) => iouOf(maskIntersectionUnion(a, b));

export interface SegmenterProbe {
  /** the box alone, single-mask output (SAM's box mode) */
  box: number;
  /** box + the two inner points, best-scored of the multimask outputs (the pipeline's call) */
  boxPoints: number;
  n: number;
}

/** Mean IoU at the original resolution over samples 0..n-1 of a world split. */
export function sam2BoxIoU(model: Sam2Image, split: Split, n: number): SegmenterProbe {
  const pred = new Sam2Predictor(model);
  let box = 0;
  let boxPoints = 0;
  try {
    for (let i = 0; i < n; i++) {
      const s = worldSample(split, i);
      pred.setImage(s.image);
      const b = [s.box[0], s.box[1], s.box[2] + 1, s.box[3] + 1];
      box += maskIoU(pred.predict({ box: b, multimask: false }).masks[0], s.mask);
      const r = pred.predict({ box: b, points: s.points, labels: [1, 1], multimask: true });
      const best = r.scores.indexOf(Math.max(...r.scores));
      boxPoints += maskIoU(r.masks[best], s.mask);
    }
  } finally {
    pred.reset();
  }
  return { box: box / n, boxPoints: boxPoints / n, n };
}

/**
 * The discriminative criterion on held-out targets: the share whose reference caption scores
 * higher on the ground-truth box crop (S1) than on the whole image (S2).
 */
export async function clipS1AboveS2(scorer: ClipScorer, split: Split, n: number): Promise<{ rate: number; meanS1: number; meanS2: number; n: number }> {
  let ok = 0;
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s = worldSample(split, i);
    const [r] = await scorer.scores(s.image, [s.box[0], s.box[1], s.box[2] + 1, s.box[3] + 1], [s.caption]);
    if (!r) throw new Error(`clip: no score for the caption of ${s.id}`);
    if (r.s1 > r.s2) ok++;
    s1 += r.s1;
    s2 += r.s2;
  }
  return { rate: ok / n, meanS1: s1 / n, meanS2: s2 / n, n };
}
