/** The policy tokenizer: a model directory's tokenizer.json through @huggingface/tokenizers. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

export class PolicyTokenizer {
  readonly tokenizer: Tokenizer;
  readonly dir: string;

  constructor(tokenizer: Tokenizer, dir: string) {
    this.tokenizer = tokenizer;
    this.dir = dir;
  }

  /** Load tokenizer.json (and tokenizer_config.json when present) from a model directory. */
  static load(dir: string): PolicyTokenizer {
    const tj = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(tj)) throw new Error(`${dir}: no tokenizer.json (the policy tokenizer is read from the model directory)`);
    let json: object;
    try {
      json = JSON.parse(fs.readFileSync(tj, 'utf8'));
    } catch (e) {
      throw new Error(`${tj}: not valid JSON (${(e as Error).message})`);
    }
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const cfg = fs.existsSync(cfgFile) ? JSON.parse(fs.readFileSync(cfgFile, 'utf8')) : {};
    return new PolicyTokenizer(new Tokenizer(json, cfg), dir);
  }

  /** Ids of a text; special tokens written in the text (<|im_start|>, <|image_pad|>) are recognised, none are added. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[], skipSpecial = true): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecial });
  }

  /** The id of a single token (e.g. '<|im_end|>'); an error when the vocabulary lacks it. */
  tokenId(token: string): number {
    const ids = this.encode(token);
    if (ids.length !== 1) throw new Error(`${this.dir}: '${token}' is not a single token of this tokenizer (got ${ids.length} ids)`);
    return ids[0];
  }
}
