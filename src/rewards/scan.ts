/**
 * Linear-time scans that give exactly what CPython's `re` gives for the reference's patterns on
 * policy text (a backtracking regex on a long response is quadratic or cubic: a 1 MB response
 * took over 150 s). Each function names its pattern; each proof of "same result" is in a comment.
 * Positions are UTF-16 code units; every literal here is ASCII, and `[^}]`, `[^<]`, `.` (DOTALL)
 * match a surrogate pair in both units or as one code point, so spans and captures are the same.
 * Only the digits of `\d` need code points (Unicode decimal digits, category Nd, as Python).
 *
 * The parsers (parse.ts, extract.ts) refuse responses over MAX_RESPONSE_CHARS before scanning;
 * the scans themselves take any length (1 MB in milliseconds).
 */
import { pyDecimalValue, pyIsSpaceCode } from './pycompat.ts';

/**
 * The longest response the parsers read, in UTF-16 code units: 262,144 (256 Ki). A DPAD
 * response is ~1,300 tokens at most (~5,000 characters); 1,024 generated tokens of Qwen's
 * longest vocabulary entries stay below it. A longer text scores 0 with a reason (rewards) and
 * is a parse failure (evaluation).
 */
export const MAX_RESPONSE_CHARS = 262_144;

/** Why a response is not parsed at all (over MAX_RESPONSE_CHARS), or null. */
export function responseTooLong(s: string): string | null {
  return s.length > MAX_RESPONSE_CHARS ? `response is ${s.length} characters, over the parser's limit of ${MAX_RESPONSE_CHARS}` : null;
}

/**
 * re.search(r'{[^}]+}', s).group(0), or null. The leftmost `{` wins whose next `}` is not the
 * character right after it: `[^}]+` runs greedily to the first `}` and cannot go past it.
 * The first `}` after a `{` is found once per `}` (it is reused while the `{`s lie before it).
 */
export function firstBraceObject(s: string): string | null {
  let i = s.indexOf('{');
  let j = -1;
  while (i >= 0) {
    if (j <= i) {
      j = s.indexOf('}', i + 1);
      if (j < 0) return null; // no `}` after this `{`, nor after any later one
    }
    if (j > i + 1) return s.slice(i, j + 1);
    i = s.indexOf('{', i + 1);
  }
  return null;
}

/**
 * re.search(open + r'(.*?)' + close, s, re.DOTALL).group(1), or null (open and close are literal
 * tags such as `<caption>` / `</caption>`). The leftmost `open` wins with the first `close` after
 * it; when that `open` has no `close` after it, no later `open` has one either.
 */
export function firstLazyTag(s: string, open: string, close: string): string | null {
  const i = s.indexOf(open);
  if (i < 0) return null;
  const j = s.indexOf(close, i + open.length);
  return j < 0 ? null : s.slice(i + open.length, j);
}

/**
 * re.search(r'<think>([^<]+)</think>', s).group(1), or null. From a `<think>`, `[^<]+` stops at
 * the next `<` (backing off cannot help: `</think>` starts with `<`), so a start matches iff that
 * `<` is not the first character and begins `</think>`. The next candidate lies at or after it.
 */
export function firstThinkNoLt(s: string): string | null {
  let i = s.indexOf('<think>');
  while (i >= 0) {
    const b = i + 7;
    const k = s.indexOf('<', b);
    if (k < 0) return null;
    if (k > b && s.startsWith('</think>', k)) return s.slice(b, k);
    i = s.indexOf('<think>', k);
  }
  return null;
}

/** the end of the run of Python whitespace (`\s`) starting at i */
function skipSpace(s: string, i: number): number {
  while (i < s.length && pyIsSpaceCode(s.charCodeAt(i))) i++;
  return i;
}

/**
 * The earliest position after `close\s*next` where close is found at or after `from`, or -1.
 * `\s*` before a tag that starts with `<` has one way to match (the whole whitespace run), and
 * the tags have no self-overlap, so later `close`s give later positions: the earliest is the best.
 * Each whitespace run is skipped once (the next `close` search starts past it).
 */
function earliestTransition(s: string, from: number, close: string, next: string): number {
  let p = s.indexOf(close, from);
  while (p >= 0) {
    const q = skipSpace(s, p + close.length);
    if (s.startsWith(next, q)) return q + next.length;
    p = s.indexOf(close, Math.max(p + 1, q));
  }
  return -1;
}

/**
 * re.fullmatch(r'<think>.*?</think>\s*<answer>.*?</answer>\s*<caption>.*?</caption>', s,
 * re.DOTALL) is not None (caption = true), or Seg-Zero's `<think>.*?</think>\s*<answer>.*?</answer>`
 * (caption = false). A full match exists iff the text starts with `<think>`, ends with the last
 * closing tag, and the earliest `</think>\s*<answer>` (after `<think>`), then the earliest
 * `</answer>\s*<caption>` after it, leave the final closing tag at or after where they end:
 * taking each transition as early as possible leaves the most room for the rest.
 */
export function thinkingFormatMatches(s: string, caption: boolean): boolean {
  const last = caption ? '</caption>' : '</answer>';
  const end = s.length - last.length; // where the final closing tag starts
  if (end < 7 || !s.startsWith('<think>') || !s.endsWith(last)) return false;
  const answer = earliestTransition(s, 7, '</think>', '<answer>');
  if (answer < 0 || answer > end) return false;
  if (!caption) return true;
  const cap = earliestTransition(s, answer, '</answer>', '<caption>');
  return cap >= 0 && cap <= end;
}

/** the Unicode decimal digit (Python `\d`) at i as [value, width in code units], or null */
function digitAt(s: string, i: number): [number, number] | null {
  if (i >= s.length) return null;
  const cp = s.codePointAt(i)!;
  const v = pyDecimalValue(cp);
  return v < 0 ? null : [v, cp > 0xffff ? 2 : 1];
}

/** `\d+` at i: the number int() reads from it and the end, or null. */
function digitsAt(s: string, i: number): [number, number] | null {
  let ascii = '';
  let j = i;
  for (let d = digitAt(s, j); d; d = digitAt(s, j)) {
    ascii += String.fromCharCode(0x30 + d[0]);
    j += d[1];
  }
  return j === i ? null : [Number(ascii), j];
}

/**
 * re.search(r'<tag>\((\d+),(\d+)\),\((\d+),(\d+)\)</tag>', s) as four int()s, or null (Python's
 * `\d`: any Unicode decimal digit). `\d+` is followed by a non-digit, so each start has one way to
 * match; a failed start is never rescanned (the next `<tag>(` lies at or after where it failed).
 */
export function firstTaggedQuad(s: string, tag: string): [number, number, number, number] | null {
  const open = `<${tag}>(`;
  const close = `)</${tag}>`;
  const seps = [',', '),(', ',', close];
  let i = s.indexOf(open);
  while (i >= 0) {
    let at = i + open.length;
    const v: number[] = [];
    for (const sep of seps) {
      const d = digitsAt(s, at);
      if (!d || !s.startsWith(sep, d[1])) break;
      v.push(d[0]);
      at = d[1] + sep.length;
    }
    if (v.length === 4) return v as [number, number, number, number];
    i = s.indexOf(open, i + 1);
  }
  return null;
}
