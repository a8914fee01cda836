/**
 * Linear-time scans that give exactly what CPython's `re` gives for the reference's patterns on
 * policy text (a backtracking regex on a long response is quadratic or cubic: a 1 MB response
 * took over 150 s). Each function names its pattern; each proof of "same result" is in a comment.
 * Positions are UTF-16 code units; every literal here is ASCII, and `[^}]`, `[^<]`, `.` (DOTALL)
 * match a surrogate pair in both units or as one code point, so spans and captures are the same.
 * Only the digits of `\d` need code points (Unicode decimal digits, category Nd, as Python).
 *
 * The generic scans (first `{...}`, first lazy tag, first tagged quadruple) are in util/scan.ts.
 * The parsers (answer.ts, extract.ts) refuse responses over MAX_RESPONSE_CHARS before scanning;
 * the scans themselves take any length (1 MB in milliseconds).
 */
import { pyIsSpaceCode } from '../util/pycompat.ts';

export { firstBraceObject, firstLazyTag, firstTaggedQuad } from '../util/scan.ts';

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
