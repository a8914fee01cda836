/**
 * Character classes and Python string helpers the CLIP text and box paths need. Class strings
 * are RegExp source for a `[...]` set. Python's own (str.strip, round, `\s`) are util/pycompat.ts's.
 */
export { PY_WHITESPACE, pyRound, pyStrip } from '../../util/pycompat.ts';

/**
 * Oniguruma's `\s` in a Unicode pattern (what Hugging Face tokenizers' regexes use): TAB..CR,
 * NEL, Line/Paragraph separators and Space_Separator. Unlike Python, U+001C..U+001F are not in it.
 */
export const ONIG_WHITESPACE = '\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * int() of a run of Unicode decimal digits (what Python's `\d` matches in a str pattern). Every
 * Nd digit block is a contiguous 0..9 run, and adjacent blocks start on a multiple of ten from
 * the first digit of the stretch, so a digit's value is its distance from that start, mod 10.
 */
export function pyIntOfDigits(s: string): number {
  let v = 0;
  for (const ch of s) {
    let cp = ch.codePointAt(0)!;
    const at = cp;
    while (/^\p{Nd}$/u.test(String.fromCodePoint(cp - 1))) cp--;
    v = v * 10 + ((at - cp) % 10);
  }
  return v;
}
