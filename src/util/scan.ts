/**
 * Linear-time scans that give exactly what CPython's `re` gives for a few patterns on arbitrary
 * text (a backtracking regex on a long text is quadratic or cubic: a 1 MB response took over
 * 150 s). Each function names its pattern; each proof of "same result" is in a comment.
 * Positions are UTF-16 code units; every literal here is ASCII, and `[^}]`, `.` (DOTALL) match a
 * surrogate pair in both units or as one code point, so spans and captures are the same. Only
 * the digits of `\d` need code points (Unicode decimal digits, category Nd, as Python).
 * The DPAD answer protocol's own scans (the think and format patterns, the length bound) are in
 * prompt/scan.ts; these are below the models, which read ground truths and captions with them.
 */
import { pyDecimalValue } from './pycompat.ts';

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
