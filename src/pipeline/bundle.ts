/**
 * A weights directory holding the three models: `policy/` (Qwen2.5-VL: config.json, weights,
 * tokenizer.json, optional dpad.json with the view size), `sam2/` (config.json + weights) and
 * optionally `clip/` (config.json, weights, CLIP vocabulary). The demo weights in weights/demo use it.
 *
 * loadWeights(dir) loads them in one call; weightsFingerprint identifies what was loaded (the
 * evaluation records it, so a rerun with other weights cannot reuse old results).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { WASM_HEAP_LIMIT } from '../backend/wasm/heap-guard.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { ClipScorer } from '../models/clip/scorer.ts';
import { loadSam2 } from '../models/sam2/weights.ts';
import type { Sam2Image } from '../models/sam2/model.ts';
import { loadPolicy, type Policy } from './policy.ts';
import { Segmenter } from './segment.ts';

export const DEFAULT_WEIGHTS = new URL('../../weights/demo/', import.meta.url).pathname;

function need(dir: string, sub: string): string {
  const p = path.join(dir, sub);
  if (!fs.existsSync(p)) throw new Error(`${dir}: no '${sub}/' directory (a weights directory holds policy/, sam2/ and clip/)`);
  return p;
}

export function loadPolicyFrom(dir: string): Policy {
  assertFitsWasm(dir, ['policy']);
  return loadPolicy(need(dir, 'policy'));
}

export function loadSegmenterModelFrom(dir: string): Sam2Image {
  assertFitsWasm(dir, ['sam2']);
  return loadSam2(need(dir, 'sam2'));
}

export function loadScorerFrom(dir: string): ClipScorer {
  assertFitsWasm(dir, ['clip']);
  return ClipScorer.load(need(dir, 'clip'));
}

/**
 * Bytes a model folder's weights take once loaded (float32, 4 bytes an element, whatever their
 * dtype on disk), read from the safetensors headers only; a .pt or .bin counts its file size
 * (float32 checkpoints, as SAM2's releases are). A policy with a tied
 * head adds the [D, V] transposed copy the model holds for inference. 0 for a missing folder.
 */
export function weightBytes(folder: string): number {
  if (!isDir(folder)) return 0;
  let bytes = 0;
  for (const f of fs.readdirSync(folder).sort()) {
    const file = path.join(folder, f);
    if (f.endsWith('.safetensors')) {
      const st = SafetensorsFile.open(file);
      try {
        for (const k of st.keys()) bytes += 4 * st.meta(k).shape.reduce((a, d) => a * d, 1);
      } finally {
        st.close();
      }
    } else if (f.endsWith('.pt') || f.endsWith('.bin')) bytes += fs.statSync(file).size;
  }
  const cfgFile = path.join(folder, 'config.json');
  if (fs.existsSync(cfgFile)) {
    const c = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    if (c.tie_word_embeddings && c.vocab_size && c.hidden_size) bytes += 4 * c.vocab_size * c.hidden_size;
  }
  return bytes;
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/**
 * On the wasm backend (`backend`, default the active one), the message for models of `dir` that
 * cannot fit in the 4 GiB wasm heap, or null when they fit (or on another backend). Checked
 * before anything is loaded, so a real-size checkpoint fails at once instead of halfway.
 */
export function wasmFitError(dir: string, subs: readonly string[] = ['policy', 'sam2', 'clip'], backend = tf.getBackend()): string | null {
  if (backend !== 'wasm') return null;
  const parts = subs.map(s => [s, weightBytes(path.join(dir, s))] as const).filter(([, b]) => b > 0);
  const total = parts.reduce((a, [, b]) => a + b, 0);
  if (total <= WASM_HEAP_LIMIT) return null;
  return `${dir}: the models need ${gib(total)} of float32 weights (${parts.map(([s, b]) => `${s} ${gib(b)}`).join(', ')}), ` +
    `more than the ${gib(WASM_HEAP_LIMIT)} the wasm backend's heap can hold. Use the native backend: npm run setup:native, then DPAD_BACKEND=tensorflow`;
}

function assertFitsWasm(dir: string, subs?: readonly string[]): void {
  const why = wasmFitError(dir, subs);
  if (why) throw new Error(why);
}

/** What loadWeights returns: the three models, where they came from, and one dispose for all. */
export interface WeightsBundle {
  /** the directory given to loadWeights */
  dir: string;
  policy: Policy;
  sam: Sam2Image;
  /** the CLIP scorer, null when the directory has no clip/ */
  scorer: ClipScorer | null;
  /** a Segmenter over policy and sam (its weightsDir is dir) */
  segmenter: Segmenter;
  /** disposes the segmenter and every model */
  dispose(): void;
}

const isDir = (p: string) => fs.existsSync(p) && fs.statSync(p).isDirectory();

/**
 * Load a weights directory: policy/ and sam2/ are required, clip/ is optional (no S1/S2 without
 * it). A missing folder is named: `weights/x: no sam2/ folder (expected policy/, sam2/ and
 * optionally clip/)`. A model that fails to load disposes the ones loaded before it.
 */
export function loadWeights(dir: string): WeightsBundle {
  if (!isDir(dir)) throw new Error(`${dir}: not a weights directory (expected a folder with policy/, sam2/ and optionally clip/)`);
  for (const sub of ['policy', 'sam2']) {
    if (!isDir(path.join(dir, sub))) throw new Error(`${dir}: no ${sub}/ folder (expected policy/, sam2/ and optionally clip/)`);
  }
  assertFitsWasm(dir);
  const policy = loadPolicy(path.join(dir, 'policy'));
  let sam: Sam2Image | null = null;
  try {
    sam = loadSam2(path.join(dir, 'sam2'));
    const scorer = isDir(path.join(dir, 'clip')) ? ClipScorer.load(path.join(dir, 'clip')) : null;
    const s = sam;
    const segmenter = new Segmenter(policy, s, { weightsDir: dir });
    return {
      dir, policy, sam: s, scorer, segmenter,
      dispose() {
        segmenter.dispose();
        policy.model.dispose();
        s.dispose();
        scorer?.model.dispose();
      },
    };
  } catch (e) {
    policy.model.dispose();
    sam?.dispose();
    throw e;
  }
}

interface HasParameters {
  namedParameters(): Map<string, tf.Variable>;
}

/** elements sampled per parameter tensor (evenly spaced, first and last included) */
export const FINGERPRINT_SAMPLES = 256;

/** JSON with object keys sorted, so equal configs hash equally whatever their key order */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * sha256 (hex) of a model as loaded: its config, and for every parameter (sorted by name) the
 * name, dtype, shape and the exact bytes of FINGERPRINT_SAMPLES evenly spaced elements. It reads
 * ~1 KB per tensor whatever the model's size (a 7B policy in well under a second) and does not
 * depend on the file format or path the weights came from, only on the values; any retraining
 * or fine-tune changes the sampled elements of every tensor it touches.
 */
export function modelFingerprint(model: HasParameters, config: unknown): string {
  const h = createHash('sha256');
  h.update(stableJson(config ?? null));
  const params = [...model.namedParameters()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, v] of params) {
    h.update(`\n${name}:${v.dtype}:[${v.shape.join(',')}]:`);
    const n = v.size;
    if (n === 0) continue;
    const m = Math.min(n, FINGERPRINT_SAMPLES);
    const idx = Int32Array.from({ length: m }, (_, k) => (m === 1 ? 0 : Math.floor((k * (n - 1)) / (m - 1))));
    const vals = tf.tidy(() => tf.gather(tf.reshape(v, [-1]), tf.tensor1d(idx, 'int32')).dataSync());
    h.update(new Uint8Array(vals.buffer, vals.byteOffset, vals.byteLength));
  }
  return h.digest('hex');
}

const TOKENIZER_PROBE = '<think>The small striped triangle, left of 2 red circles.</think><answer>{"bbox": [10, 20, 30, 40]}</answer> <caption>é 日本</caption>';

/** A policy's fingerprint: the model's, its tokenizer's ids for a probe text and the settings that change what it generates. */
export function policyFingerprint(policy: Policy): string {
  const settings = { viewSize: policy.viewSize, minPixels: policy.minPixels, maxPixels: policy.maxPixels, stopTokens: policy.stopTokens, repetitionPenalty: policy.repetitionPenalty, probe: policy.tokenizer.encode(TOKENIZER_PROBE) };
  return modelFingerprint(policy.model, { config: policy.model.config, settings });
}

export interface WeightsFingerprint {
  /** sha256 over the parts (hex, 64 characters) */
  fingerprint: string;
  policy: string;
  sam2: string;
  /** null without a scorer */
  clip: string | null;
}

/** The fingerprint of a policy + segmenter (+ scorer): what the evaluation records. */
export function weightsFingerprint(policy: Policy, sam: Sam2Image, scorer: ClipScorer | null = null): WeightsFingerprint {
  const p = policyFingerprint(policy);
  const s = modelFingerprint(sam, sam.config);
  const c = scorer ? modelFingerprint(scorer.model, { config: scorer.model.config, convention: scorer.convention }) : null;
  return { fingerprint: createHash('sha256').update(`policy ${p}\nsam2 ${s}\nclip ${c}`).digest('hex'), policy: p, sam2: s, clip: c };
}
