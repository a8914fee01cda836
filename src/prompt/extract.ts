/**
 * The released evaluation's answer parser (DPAD evaluation_scripts/evaluation.py
 * extract_bbox_points_think), used by inference (pipeline/segment.ts) and evaluation. It differs
 * from the reward parser (parse.ts + components.ts), which keeps the exact keys:
 * - the JSON is the first `{[^}]+}` of the text, read by json.loads;
 * - the box is the value of the FIRST key whose lower-cased name contains 'bbox', used only when
 *   it has 4 elements; the points are the values of the first two keys containing 'points';
 * - every coordinate is `round(int(v) * factor)` (int() truncates and reads numeric strings,
 *   round() is half-to-even), factor = image size / 840, with NO clamp to the image;
 * - think = the first `<think>([^<]+)</think>`, else "" (a `<` inside the think text gives "").
 * A missing or invalid JSON, a missing box or missing points raise, as in Python: the error is a
 * PyError whose `detail` is CPython 3.11's str(e), which the evaluation records as the think text.
 * The patterns are read by the linear-time scans of scan.ts. A response over MAX_RESPONSE_CHARS
 * is not read: a ValueError `response is N characters, over the parser's limit of 262144` (a
 * parse failure), and its think is ''.
 */
import { PyError, pyIndex, pyInt, pyJsonLoads, pyLen, pyRound, type PyValue } from '../util/pycompat.ts';
import { firstBraceObject, firstThinkNoLt, responseTooLong } from './scan.ts';

export interface Prediction {
  /** [x1, y1, x2, y2] in image pixels (integers, may lie outside the image) */
  bbox: [number, number, number, number];
  points: [[number, number], [number, number]];
  /** the first <think>([^<]+)</think>, or '' */
  think: string;
}

/** The released evaluation's think text: the first `<think>([^<]+)</think>`, else '' ('' over MAX_RESPONSE_CHARS). */
export function extractThink(text: string): string {
  const s = typeof text === 'string' ? text : String(text ?? '');
  if (responseTooLong(s)) return '';
  return firstThinkNoLt(s) ?? '';
}

/** round(int(v) * factor) as Python computes it (int * float is a float product). */
function scaleBack(v: PyValue, factor: number, what: string): number {
  const x = pyInt(v, what) * factor;
  if (Number.isNaN(x)) throw new PyError('ValueError', 'cannot convert float NaN to integer', what);
  if (!Number.isFinite(x)) throw new PyError('OverflowError', 'cannot convert float infinity to integer', what);
  return pyRound(x) + 0;
}

const unbound = (name: string) => new PyError('UnboundLocalError', `cannot access local variable '${name}' where it is not associated with a value`);

/**
 * extract_bbox_points_think(text, xFactor, yFactor): the box and points in image pixels and the
 * think text; throws PyError (a parse failure: the evaluation then records I = 0, U = |gt|).
 */
export function extractPrediction(text: string, xFactor: number, yFactor: number): Prediction {
  const s = typeof text === 'string' ? text : String(text ?? '');
  let bbox: Prediction['bbox'] | null = null;
  let points: Prediction['points'] | null = null;
  const tooLong = responseTooLong(s);
  if (tooLong) throw new PyError('ValueError', tooLong);
  const m = firstBraceObject(s);
  if (m !== null) {
    const data = pyJsonLoads(m);
    if (!(data instanceof Map)) throw new PyError('TypeError', `'${typeof data}' object has no attribute 'keys'`);
    const keys = [...data.keys()];
    const bboxKey = keys.find(k => k.toLowerCase().includes('bbox'));
    if (bboxKey !== undefined && pyLen(data.get(bboxKey), bboxKey) === 4) {
      const b = data.get(bboxKey)!;
      const f = [xFactor, yFactor, xFactor, yFactor];
      bbox = [0, 1, 2, 3].map(i => scaleBack(pyIndex(b, i, bboxKey), f[i], `${bboxKey}[${i}]`)) as Prediction['bbox'];
    }
    const pointKeys = keys.filter(k => k.toLowerCase().includes('points')).slice(0, 2);
    if (pointKeys.length === 2) {
      const pt = (k: string): [number, number] => {
        const p = data.get(k)!;
        return [scaleBack(pyIndex(p, 0, k), xFactor, `${k}[0]`), scaleBack(pyIndex(p, 1, k), yFactor, `${k}[1]`)];
      };
      points = [pt(pointKeys[0]), pt(pointKeys[1])];
    }
  }
  const think = extractThink(s);
  // `return content_bbox, points, think_text`: the box is looked up first
  if (bbox === null) throw unbound('content_bbox');
  if (points === null) throw unbound('points');
  return { bbox, points, think };
}

/** str(e) of an error: a PyError's Python text, another error's message. */
export function pyErrorText(e: unknown): string {
  return e instanceof PyError ? e.detail : e instanceof Error ? e.message : String(e);
}

/** The think text the released evaluation records for a failure: `[Error]... {str(e)}`. */
export function failureThink(errorText: string): string {
  return `[Error]... ${errorText}`;
}
