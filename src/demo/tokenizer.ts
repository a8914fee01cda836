/**
 * A byte-level BPE tokenizer for the world's language, learned from a corpus and written as a
 * Hugging Face tokenizer.json (ByteLevel pre-tokenizer and decoder, BPE model, Qwen's special
 * tokens as added tokens), so the policy loads it through the same code as Qwen's own.
 */
import { bytePairs } from '../io/byte_alphabet.ts';

/** Qwen2.5-VL's special tokens, in the order their ids follow the learned vocabulary. */
export const SPECIAL_TOKENS = [
  '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>',
] as const;

/** GPT-2's byte -> unicode map (the ByteLevel alphabet), indexed by byte. */
export function byteAlphabet(): string[] {
  const out = new Array<string>(256);
  for (const [b, c] of bytePairs()) out[b] = c;
  return out;
}

/** GPT-2's pre-tokenisation split, as the ByteLevel pre-tokenizer with use_regex applies it. */
const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface TokenizerJson {
  vocab: Record<string, number>;
  merges: string[];
  json: object;
}

/**
 * Merges that make every integer 0..max one token, with or without its leading space ("Ġ274" and
 * "274"), whatever order BPE applies them in: first "Ġ" + digit, then the two-digit prefixes (the
 * spaced ones first, so a spaced number always grows from its left), then each three-digit number
 * from both of its splits ("27"+"4" and "2"+"74"), since an unspaced number may merge either pair first.
 */
export function numberMerges(max: number): [string, string][] {
  if (max > 999) throw new Error(`numberMerges: ${max} has more than three digits`);
  const out: [string, string][] = [];
  for (let d = 0; d <= Math.min(9, max); d++) out.push(['Ġ', String(d)]);
  const two = [];
  for (let n = 10; n <= Math.min(99, max); n++) two.push(String(n));
  for (const n of two) out.push(['Ġ' + n[0], n[1]]);
  for (const n of two) out.push([n[0], n[1]]);
  for (let n = 100; n <= max; n++) {
    const s = String(n);
    out.push(['Ġ' + s.slice(0, 2), s[2]], [s.slice(0, 2), s[2]]);
    if (s[1] !== '0') out.push([s[0], s.slice(1)]);
  }
  return out;
}

/** byte-pair merging of one word's symbols by merge rank (lowest first), as BPE tokenizers apply it */
function applyMerges(syms: string[], ranks: Map<string, number>): string[] {
  let s = syms;
  for (;;) {
    let best = -1, br = Infinity;
    for (let i = 0; i + 1 < s.length; i++) {
      const r = ranks.get(`${s[i]} ${s[i + 1]}`);
      if (r !== undefined && r < br) { br = r; best = i; }
    }
    if (best < 0) return s;
    s = [...s.slice(0, best), s[best] + s[best + 1], ...s.slice(best + 2)];
  }
}

/**
 * Learn `merges` BPE merges from a corpus (deterministic: ties broken by the pair's string).
 * `numbers`: first the merges of numberMerges(numbers), so every coordinate the policy writes
 * (0..numbers) is a single token; the learned merges follow them.
 */
export function trainByteLevelBpe(corpus: string[], merges: number, opts: { numbers?: number } = {}): TokenizerJson {
  const alpha = byteAlphabet();
  const enc = new TextEncoder();
  const words = new Map<string, number>();
  for (const text of corpus) for (const m of text.matchAll(SPLIT)) {
    let w = '';
    for (const b of enc.encode(m[0])) w += alpha[b];
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  const vocab: string[] = [...alpha].sort();
  const learned: string[] = [];
  const fixed = opts.numbers === undefined ? [] : numberMerges(opts.numbers);
  const ranks = new Map(fixed.map(([a, b], i) => [`${a} ${b}`, i]));
  const known = new Set(vocab);
  for (const [a, b] of fixed) {
    learned.push(`${a} ${b}`);
    if (!known.has(a + b)) { known.add(a + b); vocab.push(a + b); }
  }
  let seqs = [...words].map(([w, c]) => ({ syms: fixed.length ? applyMerges(Array.from(w), ranks) : Array.from(w), c }));
  for (let k = 0; k < merges; k++) {
    const counts = new Map<string, number>();
    for (const s of seqs) for (let i = 0; i + 1 < s.syms.length; i++) {
      const p = `${s.syms[i]} ${s.syms[i + 1]}`;
      counts.set(p, (counts.get(p) ?? 0) + s.c);
    }
    let best = '';
    let bc = 1;
    for (const [p, c] of counts) if (c > bc || (c === bc && best !== '' && p < best)) { best = p; bc = c; }
    if (!best) break;
    const [a, b] = best.split(' ');
    learned.push(best);
    // (without number merges, exactly the plain learner: every merge appends its token)
    if (!fixed.length || !known.has(a + b)) { known.add(a + b); vocab.push(a + b); }
    seqs = seqs.map(s => {
      const out: string[] = [];
      for (let i = 0; i < s.syms.length; i++) {
        if (i + 1 < s.syms.length && s.syms[i] === a && s.syms[i + 1] === b) { out.push(a + b); i++; }
        else out.push(s.syms[i]);
      }
      return { syms: out, c: s.c };
    });
  }
  const map: Record<string, number> = {};
  vocab.forEach((t, i) => (map[t] = i));
  const added = SPECIAL_TOKENS.map((t, i) => ({ id: vocab.length + i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const json = {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: map, merges: learned },
  };
  return { vocab: map, merges: learned, json };
}

/** id of each special token in a tokenizer built by trainByteLevelBpe */
export function specialIds(vocabSize: number): Record<(typeof SPECIAL_TOKENS)[number], number> {
  return Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, vocabSize + i])) as Record<(typeof SPECIAL_TOKENS)[number], number>;
}
