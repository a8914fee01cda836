/**
 * #Tok as the released evaluation computes it (DPAD get_tokens.py, REFERENCE.md 8.5): every
 * recorded `think` that is a non-empty string is encoded with the policy tokenizer
 * (add_special_tokens=False) and its length counted; empty strings are dropped. Statistics are
 * numpy's: mean, population variance / std (ddof 0), median, min, max.
 *
 * What is recorded as `think` (evaluation.py): the first `<think>([^<]+)</think>` of the output
 * ('' when none, or when the think text holds a `<`), and for an output that cannot be parsed the
 * failure string `[Error]... {python error}`, which get_tokens COUNTS. Two countings:
 * - 'released' (default): exactly that, failure strings included;
 * - 'response': the cleaner count: the output's own think text for every counted sample
 *   (failures included), never an error string; still '' -> not counted.
 */
import { extractThink, failureThink } from '../prompt/extract.ts';

export type ThinkTokenCounting = 'released' | 'response';

export const THINK_TOKEN_COUNTINGS: Record<ThinkTokenCounting, string> = {
  released: "get_tokens.py: the recorded think (first <think>([^<]+)</think>, or '[Error]... {e}' for an unparsable output) when non-empty",
  response: "the output's own think text (first <think>([^<]+)</think>) when non-empty; parse failures are not replaced by error strings",
};

/**
 * The think text evaluation.py records: the parsed think, or `[Error]... {parseError}` when
 * parsing raised (`parseError`: Python's str(e), e.g. SegmentResult.parseError).
 */
export function recordedThink(outputText: string, parseError: string | null | undefined): string {
  return parseError !== null && parseError !== undefined ? failureThink(parseError) : extractThink(outputText);
}

/** The text whose tokens are counted under `counting` ('' = not counted). */
export function countedThink(outputText: string, parseError: string | null | undefined, counting: ThinkTokenCounting = 'released'): string {
  return counting === 'released' ? recordedThink(outputText, parseError) : extractThink(outputText);
}

export interface ThinkTokenStats {
  /** one count per non-empty think, in input order */
  token_counts: number[];
  total_think_blocks: number;
  mean_token_count: number;
  variance: number;
  std_deviation: number;
  median_token_count: number;
  min_token_count: number;
  max_token_count: number;
}

/** get_tokens.py's statistics of token counts; null when there is none (it reports nothing then). */
export function tokenCountStats(counts: readonly number[]): ThinkTokenStats | null {
  const n = counts.length;
  if (n === 0) return null;
  let s = 0;
  for (const c of counts) s += c;
  const mean = s / n;
  let q = 0;
  for (const c of counts) q += (c - mean) ** 2;
  const variance = q / n;
  const sorted = [...counts].sort((a, b) => a - b);
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return {
    token_counts: [...counts], total_think_blocks: n, mean_token_count: mean, variance, std_deviation: Math.sqrt(variance),
    median_token_count: median, min_token_count: sorted[0], max_token_count: sorted[n - 1],
  };
}

/** Encode every non-empty think string (non-strings and '' are dropped) and summarise. */
export function thinkTokenStats(thinks: readonly unknown[], encode: (text: string) => ArrayLike<number>): ThinkTokenStats | null {
  const counts: number[] = [];
  for (const t of thinks) if (typeof t === 'string' && t.length > 0) counts.push(encode(t).length);
  return tokenCountStats(counts);
}
