/**
 * CLIP's byte-level BPE tokenizer, start 49406 / end 49407, and `tokenize(texts, 77, truncate)`
 * that keeps the end token. Two text paths (`normalization`):
 * - 'openai' (clip/simple_tokenizer.py, clip.tokenize): ftfy's default fixes for well-formed
 *   text, html unescape twice, Python-whitespace collapse and strip, lower-case, the regex split
 *   (special tokens matched after that cleanup);
 * - 'hf' (transformers' CLIPTokenizerFast, what DPAD's CLIPProcessor runs): the special tokens
 *   are split off the raw text first (case-sensitive), then NFC, runs of Oniguruma `\s` -> ' ',
 *   per-character lower-case, and the same split with Oniguruma's `\s`; no ftfy, no html unescape.
 * The vocabulary comes from OpenAI's bpe_simple_vocab_16e6.txt.gz or from a Hugging Face
 * tokenizer (tokenizer.json, or vocab.json + merges.txt); both give the same ids.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { decodeHTML } from 'entities';
import { bytePairs } from '../../io/byte_alphabet.ts';
import { ONIG_WHITESPACE, PY_WHITESPACE } from './text.ts';

export const SOT = '<|startoftext|>';
export const EOT = '<|endoftext|>';

/** (byte, char) in the reference's dict order, which is also the order of the first 256 vocabulary entries */
const BYTE_PAIRS = bytePairs();
const BYTE_ENCODER: string[] = (() => {
  const out = new Array<string>(256);
  for (const [b, c] of BYTE_PAIRS) out[b] = c;
  return out;
})();
const WS = `[${PY_WHITESPACE}]`;
const PAT = new RegExp(`<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${PY_WHITESPACE}\\p{L}\\p{N}]+`, 'giu');
/** CLIPTokenizerFast's Split pre-tokenizer (case-sensitive; its `\\s` is Oniguruma's) */
const PAT_HF = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${ONIG_WHITESPACE}\\p{L}\\p{N}]+`, 'gu');
const SPECIAL_HF = /<\|startoftext\|>|<\|endoftext\|>/g;

export type TextNormalization = 'openai' | 'hf';

/**
 * The parts of ftfy.fix_text (default settings) that change well-formed text: terminal escapes
 * removed, Latin ligatures and full-width characters expanded, curly quotes straightened,
 * line breaks unified, control characters removed, NFC. (Mojibake repair is not attempted.)
 */
export function ftfyBasic(text: string): string {
  let s = text.replace(/\x1b\[[0-9;]*[a-zA-Z]/g, '');
  s = s.replace(/[\ufb00-\ufb06\u0132\u0133\u0149\u01c4-\u01cc]/g, c => c.normalize('NFKC'));
  s = s.replace(/[\uff01-\uffef]/g, c => { const n = c.normalize('NFKC'); return n.length === 1 ? n : c; }).replace(/\u3000/g, ' ');
  s = s.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  s = s.replace(/\r\n|[\r\u2028\u2029\u0085]/g, '\n');
  s = s.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
  return s.normalize('NFC');
}

/** basic_clean + whitespace_clean + lower(), as the reference encode() applies them */
export function cleanText(text: string): string {
  let s = ftfyBasic(text);
  s = decodeHTML(decodeHTML(s));
  s = s.replace(new RegExp(`^${WS}+|${WS}+$`, 'g'), '');
  s = s.replace(new RegExp(`${WS}+`, 'g'), ' ').replace(new RegExp(`^${WS}+|${WS}+$`, 'g'), '');
  return s.toLowerCase();
}

/** CLIPTokenizerFast's normalizer: NFC, runs of Oniguruma whitespace -> ' ', lower-case char by char. */
export function hfNormalize(text: string): string {
  const s = text.normalize('NFC').replace(new RegExp(`[${ONIG_WHITESPACE}]+`, 'gu'), ' ');
  let out = '';
  // Rust lower-cases each char on its own: no final-sigma context, unlike String.toLowerCase
  for (const c of s) out += c.toLowerCase();
  return out;
}

export class ClipTokenizer {
  readonly encoder: Map<string, number>;
  readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  private readonly merges: [string, string][];
  private readonly cache = new Map<string, string>();
  readonly sot: number;
  readonly eot: number;
  readonly normalization: TextNormalization;

  constructor(vocab: Map<string, number>, merges: [string, string][], opts: { normalization?: TextNormalization } = {}) {
    this.normalization = opts.normalization ?? 'openai';
    if (this.normalization !== 'openai' && this.normalization !== 'hf') throw new Error(`clip tokenizer: normalization '${String(this.normalization)}' is not 'openai' or 'hf'`);
    this.merges = merges;
    this.encoder = vocab;
    this.decoder = new Map([...vocab].map(([k, v]) => [v, k]));
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const sot = vocab.get(SOT);
    const eot = vocab.get(EOT);
    if (sot === undefined || eot === undefined) throw new Error(`clip tokenizer: the vocabulary lacks ${SOT} or ${EOT}`);
    this.sot = sot;
    this.eot = eot;
    this.cache.set(SOT, SOT);
    this.cache.set(EOT, EOT);
  }

  /** The same vocabulary with the other text path. */
  withNormalization(normalization: TextNormalization): ClipTokenizer {
    return normalization === this.normalization ? this : new ClipTokenizer(this.encoder, this.merges, { normalization });
  }

  /** From OpenAI's bpe_simple_vocab_16e6.txt.gz: 48894 merges, vocabulary derived as the reference does. */
  static fromBpeFile(file: string, opts: { normalization?: TextNormalization } = {}): ClipTokenizer {
    let text: string;
    try {
      text = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8');
    } catch (e) {
      throw new Error(`${file}: cannot read the BPE vocabulary (${(e as Error).message})`);
    }
    const lines = text.split('\n');
    const merges = lines.slice(1, 49152 - 256 - 2 + 1).map(l => l.split(' ') as [string, string]);
    const base = BYTE_PAIRS.map(([, c]) => c);
    const vocab = [...base, ...base.map(v => v + '</w>'), ...merges.map(m => m.join('')), SOT, EOT];
    return new ClipTokenizer(new Map(vocab.map((t, i) => [t, i])), merges, opts);
  }

  /** From a Hugging Face tokenizer directory or file: tokenizer.json, or vocab.json + merges.txt. */
  static fromHF(p: string, opts: { normalization?: TextNormalization } = {}): ClipTokenizer {
    const dir = fs.statSync(p).isDirectory() ? p : path.dirname(p);
    const tj = fs.statSync(p).isDirectory() ? path.join(dir, 'tokenizer.json') : p;
    if (fs.existsSync(tj) && tj.endsWith('.json') && path.basename(tj) !== 'vocab.json') {
      const j = JSON.parse(fs.readFileSync(tj, 'utf8'));
      const model = j.model ?? {};
      if (model.type !== 'BPE' || !model.vocab || !model.merges) throw new Error(`${tj}: not a BPE tokenizer.json`);
      const merges = (model.merges as (string | [string, string])[]).map(m => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m));
      return new ClipTokenizer(new Map(Object.entries(model.vocab as Record<string, number>)), merges, opts);
    }
    const vj = path.join(dir, 'vocab.json');
    const mt = path.join(dir, 'merges.txt');
    if (!fs.existsSync(vj) || !fs.existsSync(mt)) throw new Error(`${dir}: no tokenizer.json, and no vocab.json + merges.txt`);
    const vocab = new Map(Object.entries(JSON.parse(fs.readFileSync(vj, 'utf8')) as Record<string, number>));
    const merges = fs.readFileSync(mt, 'utf8').split('\n').filter(l => l && !l.startsWith('#version')).map(l => l.split(' ') as [string, string]);
    return new ClipTokenizer(vocab, merges, opts);
  }

  private bpe(token: string): string {
    const hit = this.cache.get(token);
    if (hit !== undefined) return hit;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    if (word.length === 1) {
      this.cache.set(token, word[0]);
      return word[0];
    }
    for (;;) {
      let best: string | null = null;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = `${word[i]} ${word[i + 1]}`; }
      }
      if (best === null) break;
      const [first, second] = best.split(' ');
      const next: string[] = [];
      let i = 0;
      while (i < word.length) {
        const j = word.indexOf(first, i);
        if (j < 0) { next.push(...word.slice(i)); break; }
        next.push(...word.slice(i, j));
        i = j;
        if (word[i] === first && i < word.length - 1 && word[i + 1] === second) { next.push(first + second); i += 2; }
        else { next.push(word[i]); i += 1; }
      }
      word = next;
      if (word.length === 1) break;
    }
    const out = word.join(' ');
    this.cache.set(token, out);
    return out;
  }

  private encodeWord(word: string, text: string, ids: number[]): void {
    const bytes = new TextEncoder().encode(word);
    let t = '';
    for (const b of bytes) t += BYTE_ENCODER[b];
    for (const piece of this.bpe(t).split(' ')) {
      const id = this.encoder.get(piece);
      if (id === undefined) throw new Error(`clip tokenizer: piece '${piece}' of ${JSON.stringify(text)} is not in the vocabulary`);
      ids.push(id);
    }
  }

  /** Token ids of a text, without start/end tokens, by this tokenizer's text path. */
  encode(text: string): number[] {
    const ids: number[] = [];
    if (this.normalization === 'openai') {
      for (const m of cleanText(text).matchAll(PAT)) this.encodeWord(m[0], text, ids);
      return ids;
    }
    let last = 0;
    const segment = (s: string) => {
      for (const m of hfNormalize(s).matchAll(PAT_HF)) this.encodeWord(m[0], text, ids);
    };
    for (const m of text.matchAll(SPECIAL_HF)) {
      segment(text.slice(last, m.index));
      ids.push(m[0] === SOT ? this.sot : this.eot);
      last = m.index! + m[0].length;
    }
    segment(text.slice(last));
    return ids;
  }

  /** [sot] + ids + [eot], unpadded and uncut, as CLIPProcessor(text=[t]) returns input_ids[0]. */
  ids(text: string): number[] {
    return [this.sot, ...this.encode(text), this.eot];
  }

  /** Number of tokens with start and end tokens, as the 77-token rule counts them. */
  countTokens(text: string): number {
    return this.encode(text).length + 2;
  }

  /**
   * clip.tokenize: [sot] + ids + [eot], zero-padded to `contextLength`. Too long: with
   * `truncate` the row is cut and its last token set to eot; without, an error.
   */
  tokenize(texts: string[], contextLength = 77, truncate = true): { ids: Int32Array; shape: [number, number]; lengths: number[] } {
    const ids = new Int32Array(texts.length * contextLength);
    const lengths: number[] = [];
    texts.forEach((t, r) => {
      let toks = [this.sot, ...this.encode(t), this.eot];
      lengths.push(toks.length);
      if (toks.length > contextLength) {
        if (!truncate) throw new Error(`clip tokenizer: input ${JSON.stringify(t.slice(0, 60))} is too long for context length ${contextLength}`);
        toks = toks.slice(0, contextLength);
        toks[contextLength - 1] = this.eot;
      }
      ids.set(toks, r * contextLength);
    });
    return { ids, shape: [texts.length, contextLength], lengths };
  }

  decode(ids: number[]): string {
    const byteDecoder = new Map(BYTE_ENCODER.map((c, b) => [c, b]));
    const text = ids.map(i => this.decoder.get(i) ?? '').join('');
    const bytes = Array.from(text).map(c => byteDecoder.get(c) ?? 0x3f);
    return new TextDecoder().decode(Uint8Array.from(bytes)).replace(/<\/w>/g, ' ');
  }
}
