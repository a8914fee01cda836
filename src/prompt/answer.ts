/**
 * Parse a policy response once into a typed result; every reward is a pure function of it.
 * The patterns are the reference's (SPEC section 2), with Python's `\s`, `\d` and `str.strip`,
 * read by the linear-time scans of scan.ts (identical results to CPython's `re`; a fuzz corpus
 * test holds them to the regexes). A response over MAX_RESPONSE_CHARS is not read: `rejected`
 * says why, and every field is empty, so every reward is 0.
 */
import { PyError, pyJsonLoads, pyStrip, type PyValue } from '../util/pycompat.ts';
import { extractPrediction } from './extract.ts';
import { firstBraceObject, firstLazyTag, firstTaggedQuad, firstThinkNoLt, responseTooLong, thinkingFormatMatches } from './scan.ts';

export type Box = [number, number, number, number];
export type Point = [number, number];

export interface ParsedResponse {
  text: string;
  /** fullmatch of <think>.*?</think>\s*<answer>.*?</answer>\s*<caption>.*?</caption> (DOTALL) */
  thinkingFormatDpad: boolean;
  /** the same without the caption tag: the Seg-Zero baseline */
  thinkingFormatBaseline: boolean;
  /** json.loads of the first `{[^}]+}`; null with a reason when there is none or it does not parse */
  json: PyValue | null;
  jsonError: string | null;
  /** stripped text of the first <caption>(.*?)</caption> (DOTALL), null when absent */
  caption: string | null;
  /** text of the first <think>([^<]+)</think> (the metrics' pattern), null when absent */
  think: string | null;
  /** text of the first <answer>(.*?)</answer> (DOTALL), null when absent */
  answer: string | null;
  /** why the response was not read at all (over MAX_RESPONSE_CHARS); absent when it was */
  rejected?: string;
}

export function parseResponse(text: string): ParsedResponse {
  const s = typeof text === 'string' ? text : String(text ?? '');
  const tooLong = responseTooLong(s);
  if (tooLong) {
    return { text: s, thinkingFormatDpad: false, thinkingFormatBaseline: false, json: null, jsonError: tooLong, caption: null, think: null, answer: null, rejected: tooLong };
  }
  let json: PyValue | null = null;
  let jsonError: string | null = null;
  const m = firstBraceObject(s);
  if (m === null) jsonError = 'no {...} object in the response';
  else {
    try {
      json = pyJsonLoads(m);
    } catch (e) {
      jsonError = e instanceof PyError ? e.message : String(e);
    }
  }
  const cap = firstLazyTag(s, '<caption>', '</caption>');
  return {
    text: s,
    thinkingFormatDpad: thinkingFormatMatches(s, true),
    thinkingFormatBaseline: thinkingFormatMatches(s, false),
    json,
    jsonError,
    caption: cap === null ? null : pyStrip(cap),
    think: firstThinkNoLt(s),
    answer: firstLazyTag(s, '<answer>', '</answer>'),
  };
}

export interface GroundTruth {
  box: Box | null;
  points: [Point, Point] | null;
}

/**
 * `<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`: integers in the 840 frame, each
 * read as the reference reads it: the first re.search(r'<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>')
 * (Python's `\d`: Unicode decimal digits too) and int() of the groups; likewise `<points>`.
 */
export function parseGroundTruth(text: string): GroundTruth {
  const s = pyStrip(String(text ?? ''));
  const b = firstTaggedQuad(s, 'box');
  const p = firstTaggedQuad(s, 'points');
  return {
    box: b,
    points: p ? [[p[0], p[1]], [p[2], p[3]]] : null,
  };
}

/** The inverse of parseGroundTruth, for data sets that carry boxes and points as numbers. */
export function formatGroundTruth(box: Box, points: [Point, Point]): string {
  const r = Math.round;
  return `<box>(${r(box[0])},${r(box[1])}),(${r(box[2])},${r(box[3])})</box><points>(${r(points[0][0])},${r(points[0][1])}),(${r(points[1][0])},${r(points[1][1])})</points>`;
}

/**
 * Box and points of a response in image pixels (width x height) from a policy that saw a
 * view x view image: the released evaluation's extract_bbox_points_think with factors W/view,
 * H/view. Returns the PyError when it does not parse.
 */
export function answerGeometry(text: string, width: number, height: number, view = 840): { bbox: [number, number, number, number]; points: [[number, number], [number, number]] } | { error: PyError } {
  try {
    const p = extractPrediction(text, width / view, height / view);
    return { bbox: p.bbox, points: p.points };
  } catch (e) {
    if (e instanceof PyError) return { error: e };
    throw e;
  }
}
