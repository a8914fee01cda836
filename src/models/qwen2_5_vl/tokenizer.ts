/**
 * The policy tokenizer through @huggingface/tokenizers, from either layout of a model directory:
 * - tokenizer.json (the fast tokenizer, as the demo weights ship it);
 * - vocab.json + merges.txt + added tokens (tokenizer_config.json's added_tokens_decoder or a
 *   list), as transformers' slow Qwen2Tokenizer reads them: the whole text NFC-normalised, added
 *   tokens matched first (longest at the leftmost position), the Qwen2 pre-tokenizer regex,
 *   byte-level BPE, no BOS/EOS. The equivalent tokenizer.json is built in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

/** The Qwen2 pre-tokenizer regex (Qwen2Tokenizer's PRETOKENIZE_REGEX). */
export const QWEN2_PRETOKENIZE_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** One added token (config `added_tokens` entries, or tokenizer_config.json's added_tokens_decoder values). */
export interface AddedTokenSpec {
  id: number;
  content: string;
  special?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot be read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** merges.txt as the slow tokenizer reads it: a leading `#version:` line and blank lines skipped, each line split on whitespace. */
export function parseMerges(text: string, file = 'merges.txt'): [string, string][] {
  const out: [string, string][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || (i === 0 && line.startsWith('#version:'))) return;
    const parts = line.split(/\s+/);
    if (parts.length !== 2) throw new Error(`${file}: line ${i + 1} is not a pair of tokens: ${JSON.stringify(line)}`);
    out.push([parts[0], parts[1]]);
  });
  return out;
}

/** Added tokens from tokenizer_config.json's `added_tokens_decoder` ({"151643": {content, special, ...}}). */
export function addedTokensFromConfig(cfg: Record<string, unknown>, file = 'tokenizer_config.json'): AddedTokenSpec[] {
  const dec = cfg.added_tokens_decoder;
  if (dec === undefined) return [];
  if (!dec || typeof dec !== 'object') throw new Error(`${file}: added_tokens_decoder is not an object`);
  return Object.entries(dec as Record<string, AddedTokenSpec>).map(([id, t]) => {
    if (!t || typeof t.content !== 'string') throw new Error(`${file}: added_tokens_decoder["${id}"] has no content`);
    return { ...t, id: Number(id) };
  });
}

/** The tokenizer.json object equivalent to Qwen2Tokenizer over (vocab, merges, added tokens). */
export function qwen2TokenizerJson(vocab: Record<string, number>, merges: [string, string][], added: AddedTokenSpec[]): object {
  return {
    version: '1.0',
    added_tokens: added.map(t => ({
      id: t.id, content: t.content, single_word: t.single_word ?? false, lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false, normalized: false, special: t.special ?? true,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_PRETOKENIZE_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
}

export class PolicyTokenizer {
  readonly tokenizer: Tokenizer;
  readonly dir: string;
  /** NFC-normalise the whole text before added tokens are matched (the slow Qwen2Tokenizer's order) */
  readonly nfcFirst: boolean;

  constructor(tokenizer: Tokenizer, dir: string, nfcFirst = false) {
    this.tokenizer = tokenizer;
    this.dir = dir;
    this.nfcFirst = nfcFirst;
  }

  /**
   * Load a model directory: tokenizer.json when present (with tokenizer_config.json), otherwise
   * vocab.json + merges.txt with the added tokens of tokenizer_config.json (added_tokens_decoder).
   */
  static load(dir: string): PolicyTokenizer {
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const cfg = fs.existsSync(cfgFile) ? (readJson(cfgFile) as Record<string, unknown>) : {};
    const tj = path.join(dir, 'tokenizer.json');
    if (fs.existsSync(tj)) return new PolicyTokenizer(new Tokenizer(readJson(tj) as object, cfg), dir);
    const vocab = path.join(dir, 'vocab.json');
    const merges = path.join(dir, 'merges.txt');
    if (!fs.existsSync(vocab) || !fs.existsSync(merges)) {
      throw new Error(`${dir}: no tokenizer.json and no vocab.json + merges.txt (the policy tokenizer is read from the model directory)`);
    }
    return PolicyTokenizer.fromFiles(vocab, merges, addedTokensFromConfig(cfg, cfgFile), dir);
  }

  /** vocab.json + merges.txt + added tokens -> the Qwen2Tokenizer. */
  static fromFiles(vocabPath: string, mergesPath: string, addedTokens: AddedTokenSpec[] = [], dir = path.dirname(vocabPath)): PolicyTokenizer {
    const vocab = readJson(vocabPath);
    if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) throw new Error(`${vocabPath}: not a {token: id} object`);
    let mergesText: string;
    try {
      mergesText = fs.readFileSync(mergesPath, 'utf8');
    } catch (e) {
      throw new Error(`${mergesPath}: cannot be read (${(e as Error).message})`);
    }
    return PolicyTokenizer.fromVocab(vocab as Record<string, number>, parseMerges(mergesText, mergesPath), addedTokens, dir);
  }

  static fromVocab(vocab: Record<string, number>, merges: [string, string][], addedTokens: AddedTokenSpec[] = [], dir = '<memory>'): PolicyTokenizer {
    for (const t of addedTokens) {
      if (!Number.isInteger(t.id) || t.id < 0) throw new Error(`${dir}: added token ${JSON.stringify(t.content)} has no valid id (${t.id})`);
    }
    // Qwen2Tokenizer's default: clean_up_tokenization_spaces=False
    return new PolicyTokenizer(new Tokenizer(qwen2TokenizerJson(vocab, merges, addedTokens), { clean_up_tokenization_spaces: false }), dir, true);
  }

  /** Ids of a text; special tokens written in the text (<|im_start|>, <|image_pad|>) are recognised, none are added. */
  encode(text: string): number[] {
    return this.tokenizer.encode(this.nfcFirst ? text.normalize('NFC') : text, { add_special_tokens: false }).ids;
  }

  /** Token strings of a text (byte-level symbols, e.g. 'Ġworld'). */
  tokens(text: string): string[] {
    return this.tokenizer.encode(this.nfcFirst ? text.normalize('NFC') : text, { add_special_tokens: false }).tokens;
  }

  decode(ids: number[], skipSpecial = true): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecial });
  }

  /** The id of a single token (e.g. '<|im_end|>'); an error when the vocabulary lacks it. */
  tokenId(token: string): number {
    const ids = this.encode(token);
    if (ids.length !== 1) throw new Error(`${this.dir}: '${token}' is not a single token of this tokenizer (got ${ids.length} ids)`);
    return ids[0];
  }
}
