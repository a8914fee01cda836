/**
 * The demo models' own acceptance measures on the embedded world (RESULTS.md): SAM2's IoU from a
 * box prompt at the image's resolution, CLIP's S1 > S2 rate for the reference caption, and whether
 * the policy uses its image at all (its format rewards come from evaluateOnWorld).
 */
import { referenceResponse, worldSample, type Split } from '../data/world/generator.ts';
import type { ImageU8 } from '../io/resample.ts';
import { sequenceLogProbs } from '../models/qwen2_5_vl/generate.ts';
import { answerTokenSpan, encodePrompt, type Policy } from '../pipeline/policy.ts';
import { locateExample } from './locate.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { Sam2Predictor } from '../models/sam2/predictor.ts';
import type { ClipScorer } from '../models/clip/scorer.ts';
import { iouOf, maskIntersectionUnion } from '../eval/metrics.ts';
import { boxIou } from '../rewards/components.ts';
import { packBatch } from './sft.ts';
import * as tf from '@tensorflow/tfjs-core';

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

/**
 * One teacher-forced pass over examples (prompt ids, response ids, pixels, grid): the decoder's
 * argmax at each response position, row-major [B, R]. Disposes the examples' pixels.
 */
function teacherForcedArgmax(policy: Policy, ex: readonly { ids: readonly number[]; resp: number[]; pixels: tf.Tensor2D; grid: [number, number, number] }[]): { am: ArrayLike<number>; R: number } {
  const p = packBatch(ex.map(e => ({ ids: e.ids, resp: e.resp, weights: new Float32Array(e.resp.length) })), policy.model.config.pad_token_id);
  const pred = tf.tidy(() => {
    const pixels = tf.concat(ex.map(e => e.pixels), 0) as tf.Tensor2D;
    const out = policy.model.forward({ ids: p.ids, batch: p.batch, length: p.promptLength + p.responseLength, attentionMask: p.attentionMask, pixelValues: pixels, grids: ex.map(e => e.grid) });
    return tf.argMax(out.logits.slice([0, p.promptLength - 1, 0], [p.batch, p.responseLength, -1]), -1);
  });
  const am = pred.dataSync();
  pred.dispose();
  tf.dispose(ex.map(e => e.pixels));
  return { am, R: p.responseLength };
}

/** the predicted numbers at the first `count` number tokens of `resp` in [from, to) (NaN where the prediction is not a number) */
function predictedNumbers(tok: Policy['tokenizer'], resp: readonly number[], got: (i: number) => number, from = 0, to = resp.length, count = 4): number[] {
  const out: number[] = [];
  for (let i = from; i < to && out.length < count; i++) {
    if (/^\s?\d+$/.test(tok.decode([resp[i]]))) out.push(Number(tok.decode([got(i)]).trim()));
  }
  return out;
}

/**
 * Can the policy place the target once it is told everything before? Teacher-forced on the
 * reference response, each coordinate of the answer's bbox is the decoder's argmax at its position;
 * returns the rate of boxes with IoU > 0.5 against the ground truth (the IoU reward's test), their
 * mean IoU, and the rate at which every argmax token of the think's final sentence (the target's
 * caption and place) matches the reference. An upper bound on
 * greedy decoding, one forward pass per batch of 8: the warm start's progress measure.
 */
export function policyTeacherForcedBox(policy: Policy, split: Split, n: number): { iouAbove05: number; meanIoU: number; captionAcc: number; n: number } {
  const v = policy.viewSize;
  const tok = policy.tokenizer;
  const imEnd = tok.tokenId('<|im_end|>');
  let above = 0, sum = 0, capOk = 0;
  for (let start = 0; start < n; start += 8) {
    const samples = Array.from({ length: Math.min(8, n - start) }, (_, k) => worldSample(split, start + k, { frame: v }));
    const ex = samples.map(s => {
      const enc = encodePrompt(policy, s.image, s.query);
      const text = referenceResponse(s, v);
      return { ids: enc.ids, resp: [...tok.encode(text), imEnd], pixels: enc.pixelValues, grid: enc.grid, text };
    });
    const { am, R } = teacherForcedArgmax(policy, ex);
    ex.forEach((e, b) => {
      const got = (i: number) => am[b * R + i];
      // the answer's first four number tokens are the bbox
      const [a, z] = answerTokenSpan(tok, e.text);
      const box = predictedNumbers(tok, e.resp, got, a, z);
      const gt = samples[b].box.map(x => Math.round((x * v) / samples[b].image.width));
      const iou = box.length === 4 && box.every(Number.isFinite) ? boxIou(box, gt) : 0;
      sum += iou;
      if (iou > 0.5) above++;
      // the think's final sentence, "It is <caption> in the <place>.": which object the policy picked
      const end = e.text.indexOf('</think>');
      const [ca, cz] = [tok.encode(e.text.slice(0, e.text.lastIndexOf('It is ', end))).length, tok.encode(e.text.slice(0, end)).length];
      let ok = true;
      for (let i = ca; i < cz; i++) if (got(i) !== e.resp[i]) ok = false;
      if (ok) capOk++;
    });
  }
  return { iouAbove05: above / n, meanIoU: sum / n, captionAcc: capOk / n, n };
}

/**
 * The locate probe: teacher-forced on locate items (locate.ts) of `n` samples of a split, the
 * decoder's argmax at each coordinate of `[x1, y1, x2, y2]`; returns the rate of boxes with IoU > 0.5
 * against the item's box and their mean IoU. One forward pass per batch of 16.
 */
export function policyLocateBox(policy: Policy, split: Split, n: number): { iouAbove05: number; meanIoU: number; n: number } {
  const v = policy.viewSize;
  const tok = policy.tokenizer;
  let above = 0, sum = 0, seen = 0;
  for (let start = 0; start < n; start += 16) {
    const ex = Array.from({ length: Math.min(16, n - start) }, (_, k) => locateExample(policy, worldSample(split, start + k, { frame: v }), start + k))
      .filter((e): e is NonNullable<typeof e> => e !== null);
    if (!ex.length) continue;
    const { am, R } = teacherForcedArgmax(policy, ex);
    ex.forEach((e, b) => {
      const box = predictedNumbers(tok, e.resp, i => am[b * R + i]);
      const iou = box.length === 4 && box.every(Number.isFinite) ? boxIou(box, e.box) : 0;
      sum += iou;
      if (iou > 0.5) above++;
      seen++;
    });
  }
  return { iouAbove05: seen ? above / seen : 0, meanIoU: seen ? sum / seen : 0, n: seen };
}
