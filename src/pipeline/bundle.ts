/**
 * A weights directory holding the three models: `policy/` (Qwen2.5-VL: config.json, weights,
 * tokenizer.json, optional dpad.json with the view size), `sam2/` (config.json + weights) and
 * `clip/` (config.json, weights, CLIP vocabulary). The demo weights in weights/demo use it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipScorer } from '../models/clip/scorer.ts';
import { loadSam2 } from '../models/sam2/weights.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { loadPolicy, type Policy } from './policy.ts';

export const DEFAULT_WEIGHTS = new URL('../../weights/demo/', import.meta.url).pathname;

function need(dir: string, sub: string): string {
  const p = path.join(dir, sub);
  if (!fs.existsSync(p)) throw new Error(`${dir}: no '${sub}/' directory (a weights directory holds policy/, sam2/ and clip/)`);
  return p;
}

export function loadPolicyFrom(dir: string): Policy {
  return loadPolicy(need(dir, 'policy'));
}

export function loadSegmenterModelFrom(dir: string): Sam2Image {
  return loadSam2(need(dir, 'sam2'));
}

export function loadScorerFrom(dir: string): ClipScorer {
  return ClipScorer.load(need(dir, 'clip'));
}
