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

/** Learn `merges` BPE merges from a corpus (deterministic: ties broken by the pair's string). */
export function trainByteLevelBpe(corpus: string[], merges: number): TokenizerJson {
  const alpha = byteAlphabet();
  const enc = new TextEncoder();
  const words = new Map<string, number>();
  for (const text of corpus) for (const m of text.matchAll(SPLIT)) {
    let w = '';
    for (const b of enc.encode(m[0])) w += alpha[b];
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  let seqs = [...words].map(([w, c]) => ({ syms: Array.from(w), c }));
  const vocab: string[] = [...alpha].sort();
  const learned: string[] = [];
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
    vocab.push(a + b);
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
