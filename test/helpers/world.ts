/** Test helper: a tiny world setup (tokenizer, policy, reference, CLIP scorer, dataset) built in a temp directory. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { worldSample } from '../../src/data/world/generator.ts';
import { worldClipConfig, worldQwenConfig, writeWorldTokenizer, worldSam2Config } from '../../src/demo/models.ts';
import { ClipModel } from '../../src/models/clip/model.ts';
import { ClipScorer } from '../../src/models/clip/scorer.ts';
import { ClipTokenizer } from '../../src/models/clip/tokenizer.ts';
import { Qwen2_5_VL } from '../../src/models/qwen2_5_vl/model.ts';
import { PolicyTokenizer } from '../../src/models/qwen2_5_vl/tokenizer.ts';
import { Sam2Image } from '../../src/models/sam2/model.ts';
import { makePolicy } from '../../src/pipeline/policy.ts';
import type { TrainDataset } from '../../src/rl/trainer.ts';
import { FIXTURES } from './setup.ts';

export const VIEW = 56;

let cachedTokDir: string | null = null;

export function tinyTokenizerDir(): string {
  if (!cachedTokDir) {
    cachedTokDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-tok-'));
    writeWorldTokenizer(cachedTokDir, { merges: 300 });
  }
  return cachedTokDir;
}

/** A policy with random weights seeded deterministically, and a frozen reference copy. */
export function tinyPolicy(seed = 1) {
  const dir = tinyTokenizerDir();
  const tokenizer = PolicyTokenizer.load(dir);
  const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const base = Object.keys(tj.model.vocab).length;
  const ids = Object.fromEntries(tj.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id])) as Parameters<typeof worldQwenConfig>[0]['ids'];
  const cfg = worldQwenConfig({ vocabSize: base + tj.added_tokens.length, ids }, 'tiny');
  const model = new Qwen2_5_VL(cfg);
  // deterministic weights: overwrite the random init with seeded values
  const params = model.namedParameters();
  let k = 0;
  for (const [, v] of params) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', seed * 1000 + k++));
  const ref = new Qwen2_5_VL(cfg);
  const ex = model.exportTensors();
  ref.load(ex);
  tf.dispose([...ex.values()]);
  return { policy: makePolicy(model, tokenizer, { viewSize: VIEW }), reference: ref, config: cfg };
}

export function tinyScorer(): ClipScorer {
  const m = new ClipModel(worldClipConfig('tiny'));
  return new ClipScorer(m, ClipTokenizer.fromBpeFile(path.join(FIXTURES, 'clip-tiny-openai', 'bpe_simple_vocab_16e6.txt.gz')));
}

export function tinySam(): Sam2Image {
  return new Sam2Image(worldSam2Config('tiny'));
}

export function worldDataset(n: number): TrainDataset {
  return { size: n, get: i => { const s = worldSample('train', i, { size: 96, frame: VIEW }); return { image: s.image, query: s.query, solution: s.solution }; } };
}
