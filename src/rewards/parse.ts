/**
 * Parse a policy response once into a typed result; every reward is a pure function of it.
 * The patterns are the reference's (SPEC section 2), with Python's `\s` and `str.strip`.
 */
import { PY_WHITESPACE, PyError, pyJsonLoads, pyStrip, type PyValue } from './pycompat.ts';

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
}

const S = `[${PY_WHITESPACE}]*`;
const DPAD_FORMAT = new RegExp(`^<think>[^]*?</think>${S}<answer>[^]*?</answer>${S}<caption>[^]*?</caption>$`);
const BASELINE_FORMAT = new RegExp(`^<think>[^]*?</think>${S}<answer>[^]*?</answer>$`);
const FIRST_JSON = /\{[^}]+\}/;
const CAPTION = /<caption>([^]*?)<\/caption>/;
const THINK = /<think>([^<]+)<\/think>/;
const ANSWER = /<answer>([^]*?)<\/answer>/;

export function parseResponse(text: string): ParsedResponse {
  const s = typeof text === 'string' ? text : String(text ?? '');
  let json: PyValue | null = null;
  let jsonError: string | null = null;
  const m = FIRST_JSON.exec(s);
  if (!m) jsonError = 'no {...} object in the response';
  else {
    try {
      json = pyJsonLoads(m[0]);
    } catch (e) {
      jsonError = e instanceof PyError ? e.message : String(e);
    }
  }
  const cap = CAPTION.exec(s);
  const th = THINK.exec(s);
  const an = ANSWER.exec(s);
  return {
    text: s,
    thinkingFormatDpad: DPAD_FORMAT.test(s),
    thinkingFormatBaseline: BASELINE_FORMAT.test(s),
    json,
    jsonError,
    caption: cap ? pyStrip(cap[1]) : null,
    think: th ? th[1] : null,
    answer: an ? an[1] : null,
  };
}

export interface GroundTruth {
  box: Box | null;
  points: [Point, Point] | null;
}

const GT_BOX = /<box>\((\d+),(\d+)\),\((\d+),(\d+)\)<\/box>/;
const GT_POINTS = /<points>\((\d+),(\d+)\),\((\d+),(\d+)\)<\/points>/;

/** `<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`: integers in the 840 frame */
export function parseGroundTruth(text: string): GroundTruth {
  const s = pyStrip(String(text ?? ''));
  const b = GT_BOX.exec(s);
  const p = GT_POINTS.exec(s);
  return {
    box: b ? [Number(b[1]), Number(b[2]), Number(b[3]), Number(b[4])] : null,
    points: p ? [[Number(p[1]), Number(p[2])], [Number(p[3]), Number(p[4])]] : null,
  };
}

/** The inverse of parseGroundTruth, for data sets that carry boxes and points as numbers. */
export function formatGroundTruth(box: Box, points: [Point, Point]): string {
  const r = Math.round;
  return `<box>(${r(box[0])},${r(box[1])}),(${r(box[2])},${r(box[3])})</box><points>(${r(points[0][0])},${r(points[0][1])}),(${r(points[1][0])},${r(points[1][1])})</points>`;
}
