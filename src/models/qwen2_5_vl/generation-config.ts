/**
 * A checkpoint's generation_config.json, the fields the policy uses: eos_token_id (an id or a
 * list: any of them ends a response) and repetition_penalty (1 = none). Other fields are kept
 * in `raw`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface GenerationConfig {
  /** ids that end a response; empty when the file names none */
  eosTokenIds: number[];
  /** HF's RepetitionPenaltyLogitsProcessor penalty; 1 when absent */
  repetitionPenalty: number;
  raw: Record<string, unknown>;
}

export function parseGenerationConfig(raw: Record<string, unknown>, where = 'generation_config.json'): GenerationConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: not a JSON object`);
  const eos = raw.eos_token_id;
  let eosTokenIds: number[] = [];
  if (eos !== undefined && eos !== null) {
    const list = Array.isArray(eos) ? eos : [eos];
    for (const id of list) if (!Number.isInteger(id) || (id as number) < 0) throw new Error(`${where}: eos_token_id must be a token id or a list of token ids, got ${JSON.stringify(eos)}`);
    eosTokenIds = [...new Set(list as number[])];
  }
  const rp = raw.repetition_penalty;
  let repetitionPenalty = 1;
  if (rp !== undefined && rp !== null) {
    if (typeof rp !== 'number' || !(rp > 0)) throw new Error(`${where}: repetition_penalty must be a strictly positive number, got ${JSON.stringify(rp)}`);
    repetitionPenalty = rp;
  }
  return { eosTokenIds, repetitionPenalty, raw };
}

/** generation_config.json of a model directory, or null when it has none. */
export function readGenerationConfig(dir: string): GenerationConfig | null {
  const file = path.join(dir, 'generation_config.json');
  if (!fs.existsSync(file)) return null;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseGenerationConfig(raw, file);
}
