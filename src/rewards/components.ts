/**
 * Reward components, each a pure function of a parsed response (and the ground truth) that
 * returns its value and, when it scores 0, why. None of them throws, on any input.
 * Semantics are the reference's (DPAD seg_restrict.py), including its Python corner cases:
 * floats in the box are used as floats, points are cast with int(), a box of the wrong
 * length or a value of the wrong type scores 0.
 */
import type { GroundTruth, ParsedResponse } from '../prompt/answer.ts';
import { PyError, pyGet, pyIndex, pyInt, pyLen, pyMax, pyMin, pyNumber, type PyValue } from '../util/pycompat.ts';

export interface RewardValue {
  value: number;
  /** why the component is not 1 (absent when it is) */
  reason?: string;
}

const ok = (value: number): RewardValue => ({ value });
const zero = (reason: string): RewardValue => ({ value: 0, reason });

function guarded(f: () => RewardValue): RewardValue {
  try {
    return f();
  } catch (e) {
    return zero(e instanceof PyError ? e.message : `internal: ${(e as Error).message}`);
  }
}

/** `<think>…</think>\s*<answer>…</answer>\s*<caption>…</caption>` fully matches (baseline: without caption). */
export function thinkingFormatReward(p: ParsedResponse, opts: { caption?: boolean } = {}): RewardValue {
  const match = opts.caption === false ? p.thinkingFormatBaseline : p.thinkingFormatDpad;
  if (p.rejected) return zero(p.rejected);
  return match ? ok(1) : zero(opts.caption === false ? 'response is not <think>…</think><answer>…</answer>' : 'response is not <think>…</think><answer>…</answer><caption>…</caption>');
}

/** The first {...} is JSON with bbox (list of 4), points_1 and points_2 (lists of 2). */
export function segmentationFormatReward(p: ParsedResponse): RewardValue {
  return guarded(() => {
    if (p.json === null) return zero(p.jsonError ?? 'no JSON');
    const d = p.json;
    if (!(d instanceof Map)) return zero('JSON is not an object');
    for (const k of ['bbox', 'points_1', 'points_2']) if (!d.has(k)) return zero(`JSON has no '${k}'`);
    const bbox = d.get('bbox')!;
    if (!Array.isArray(bbox) || bbox.length !== 4) return zero('bbox is not a list of 4');
    for (const k of ['points_1', 'points_2']) {
      const v = d.get(k)!;
      if (!Array.isArray(v) || v.length !== 2) return zero(`${k} is not a list of 2`);
    }
    return ok(1);
  });
}

/** data['bbox'] when len(...) == 4, else null (the reference then skips or fails later) */
function predictedBox(p: ParsedResponse): PyValue | null {
  if (p.json === null) throw new PyError('JSONDecodeError', p.jsonError ?? 'no JSON');
  const bbox = pyGet(p.json, 'bbox');
  return pyLen(bbox, 'bbox') === 4 ? bbox : null;
}

/** Box IoU with the +1 pixel convention; intersection only when x1 < x2 and y1 < y2 strictly. */
export function boxIou(box1: PyValue, box2: readonly number[]): number {
  const a = [0, 1, 2, 3].map(i => pyNumber(pyIndex(box1, i, 'bbox'), `bbox[${i}]`));
  const ix1 = pyMax(a[0], box2[0]);
  const iy1 = pyMax(a[1], box2[1]);
  const ix2 = pyMin(a[2], box2[2]);
  const iy2 = pyMin(a[3], box2[3]);
  const inter = ix1 < ix2 && iy1 < iy2 ? (ix2 - ix1 + 1) * (iy2 - iy1 + 1) : 0;
  const area1 = (a[2] - a[0] + 1) * (a[3] - a[1] + 1);
  const area2 = (box2[2] - box2[0] + 1) * (box2[3] - box2[1] + 1);
  const union = area1 + area2 - inter;
  if (union === 0) throw new PyError('ZeroDivisionError', 'float division by zero (union 0)');
  return inter / union;
}

/** The raw IoU the reference's seg_iou_reward returns (0 whenever it cannot be computed). */
export function iouValue(p: ParsedResponse, gt: GroundTruth): RewardValue {
  return guarded(() => {
    if (!gt.box) return zero('ground truth has no <box>');
    const bbox = predictedBox(p);
    if (bbox === null) return zero('bbox does not have 4 entries');
    const v = boxIou(bbox, gt.box);
    // NaN arises only from non-finite coordinates (CPython would return nan there); it scores 0
    if (Number.isNaN(v)) return zero('IoU is not a number (non-finite coordinates)');
    return { value: v, reason: v > 0.5 ? undefined : `IoU ${v.toFixed(4)} <= 0.5` };
  });
}

/** 1 if the box IoU > 0.5 (seg_strict_compute_score's threshold) */
export function iouReward(p: ParsedResponse, gt: GroundTruth, threshold = 0.5): RewardValue {
  const v = iouValue(p, gt);
  return v.value > threshold ? ok(1) : zero(v.reason ?? `IoU ${v.value} <= ${threshold}`);
}

/** 1 if the mean absolute difference of the 4 box coordinates is < 10 */
export function boxL1Reward(p: ParsedResponse, gt: GroundTruth, threshold = 10): RewardValue {
  return guarded(() => {
    if (!gt.box) return zero('ground truth has no <box>');
    const bbox = predictedBox(p);
    if (bbox === null) return zero('bbox does not have 4 entries');
    let s = 0;
    for (let i = 0; i < 4; i++) s += Math.abs(pyNumber(pyIndex(bbox, i, 'bbox'), `bbox[${i}]`) - gt.box[i]);
    const l1 = s / 4;
    return l1 < threshold ? ok(1) : zero(Number.isNaN(l1) ? 'box L1 is not a number' : `box L1 ${l1} >= ${threshold}`);
  });
}

function inBox(pt: [number, number], box: PyValue): boolean {
  // CPython's chained comparisons short-circuit; a non-number is a TypeError only when reached
  const b = (i: number) => pyNumber(pyIndex(box, i, 'bbox'), `bbox[${i}]`);
  if (!(b(0) <= pt[0])) return false;
  if (!(pt[0] <= b(2))) return false;
  if (!(b(1) <= pt[1])) return false;
  return pt[1] <= b(3);
}

/**
 * 1 if both predicted points (cast with int()) lie inside the predicted box (inclusive) and the
 * mean distance to the ground-truth points, under the better of the two pairings, is < 100.
 */
export function pointsL1Reward(p: ParsedResponse, gt: GroundTruth, threshold = 100): RewardValue {
  return guarded(() => {
    if (!gt.points) return zero('ground truth has no <points>');
    if (p.json === null) return zero(p.jsonError ?? 'no JSON');
    const bboxRaw = pyGet(p.json, 'bbox');
    const box = pyLen(bboxRaw, 'bbox') === 4 ? bboxRaw : null;
    const q1 = pyGet(p.json, 'points_1');
    const q2 = pyGet(p.json, 'points_2');
    const p1: [number, number] = [pyInt(pyIndex(q1, 0, 'points_1'), 'points_1[0]'), pyInt(pyIndex(q1, 1, 'points_1'), 'points_1[1]')];
    const p2: [number, number] = [pyInt(pyIndex(q2, 0, 'points_2'), 'points_2[0]'), pyInt(pyIndex(q2, 1, 'points_2'), 'points_2[1]')];
    if (box === null) return zero('bbox does not have 4 entries');
    if (!(inBox(p1, box) && inBox(p2, box))) return zero('a point lies outside the predicted box');
    const [g1, g2] = gt.points;
    const d = (a: [number, number], b: [number, number]) => Math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2);
    const dist = Math.min(d(p1, g1) + d(p2, g2), d(p1, g2) + d(p2, g1)) / 2;
    return dist < threshold ? ok(1) : zero(`points distance ${dist.toFixed(2)} >= ${threshold}`);
  });
}

/** Discriminative scores of a caption: S1 = cos(caption, GT-box crop), S2 = cos(caption, whole image). */
export interface DiscriminativeScores {
  s1: number;
  s2: number;
}

export type DiscriminativeMode = 'binary' | 'difference' | 'scaled';

/** SNR = S1 / S2 (eq. 4); +-Infinity or NaN when S2 = 0 */
export function snr(s: DiscriminativeScores): number {
  return s.s1 / s.s2;
}

/**
 * The discriminative reward (REFERENCE.md 5.7), a function of S1 (caption vs GT-box crop) and
 * S2 (caption vs whole image):
 * - binary (the paper's DPAD, eqs. 4-5; default): 1 if S2 > 0 and S1/S2 > 1, else 0;
 * - difference (the ablation, inferred): max(0, S1 - S2);
 * - scaled (what the released code trains, seg_clip_reward): S1 * max(0, S1 - S2).
 * Non-finite scores give 0; no caption (null) gives 0.
 */
export function discriminativeReward(s: DiscriminativeScores | null, mode: DiscriminativeMode = 'binary'): RewardValue {
  if (s === null) return zero('no caption, or a caption over 77 CLIP tokens');
  if (!Number.isFinite(s.s1) || !Number.isFinite(s.s2)) return zero('non-finite CLIP scores');
  const diff = Math.max(0, s.s1 - s.s2);
  switch (mode) {
    case 'binary': {
      if (!(s.s2 > 0)) return zero(`S2 ${s.s2} <= 0: SNR undefined`);
      const r = snr(s);
      return r > 1 ? ok(1) : zero(`SNR ${r.toFixed(4)} <= 1`);
    }
    case 'difference':
      return diff > 0 ? ok(diff) : zero('S1 <= S2');
    case 'scaled':
      return diff > 0 ? ok(s.s1 * diff) : zero('S1 <= S2');
  }
}
