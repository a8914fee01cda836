/**
 * The demo models' own acceptance measures on the embedded world (RESULTS.md): SAM2's IoU from a
 * box prompt at the image's resolution, CLIP's S1 > S2 rate for the reference caption, and whether
 * the policy uses its image at all (its format rewards come from evaluateOnWorld).
 */
import { referenceResponse, worldSample, type Split } from '../data/world/generator.ts';
import type { ImageU8 } from '../io/resample.ts';
import { sequenceLogProbs } from '../models/qwen2_5_vl/generate.ts';
import { answerTokenSpan, encodePrompt, type Policy } from '../pipeline/policy.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { Sam2Predictor } from '../models/sam2/predictor.ts';
import type { ClipScorer } from '../models/clip/scorer.ts';
import { iouOf, maskIntersectionUnion } from '../eval/metrics.ts';

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

/**
 * Does the policy look at the image? Mean per-token NLL of the reference <answer> under the
 * sample's own image and under another sample's image (teacher-forced, n samples of a split).
 * A policy that ignores its image scores the same under both: gap 0.
 */
export function policyImageUse(policy: Policy, split: Split, n: number): { answerNll: number; otherImageNll: number; gap: number; n: number } {
  const v = policy.viewSize;
  const imEnd = policy.tokenizer.tokenId('<|im_end|>');
  const answerNll = (s: ReturnType<typeof worldSample>, image: ImageU8): number => {
    const enc = encodePrompt(policy, image, s.query);
    const text = referenceResponse(s, v);
    const resp = [...policy.tokenizer.encode(text), imEnd];
    const [a, z] = answerTokenSpan(policy.tokenizer, text);
    const ids = Int32Array.from([...enc.ids, ...resp]);
    const lp = sequenceLogProbs(policy.model, { ids, batch: 1, promptLength: enc.ids.length, responseLength: resp.length, attentionMask: new Int32Array(ids.length).fill(1), pixelValues: enc.pixelValues, grids: [enc.grid] }).logProbs;
    const d = lp.dataSync();
    lp.dispose();
    enc.pixelValues.dispose();
    let s2 = 0;
    for (let k = a; k < z; k++) s2 -= d[k];
    return s2 / (z - a);
  };
  let own = 0, other = 0;
  for (let i = 0; i < n; i++) {
    const s = worldSample(split, i, { frame: v });
    own += answerNll(s, s.image);
    other += answerNll(s, worldSample(split, n + i, { frame: v }).image);
  }
  return { answerNll: own / n, otherImageNll: other / n, gap: (other - own) / n, n };
}
