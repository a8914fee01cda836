/** Test helper for the LoRA tests: a tiny Qwen2.5-VL with seeded weights, inputs with an image, temp dirs. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { qwenConfigFrom, type QwenConfig } from '../../src/models/qwen2_5_vl/config.ts';
import { loraAdapters } from '../../src/models/qwen2_5_vl/lora.ts';
import { Qwen2_5_VL, type ForwardInputs } from '../../src/models/qwen2_5_vl/model.ts';
import { FIXTURES } from './setup.ts';

/** The tiny fixture config (hidden 48, 2 decoder layers, vision depth 4), optionally changed. */
export function tinyQwenConfig(over: Partial<QwenConfig> = {}): QwenConfig {
  const raw = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'qwen2_5_vl-tiny-a', 'config.json'), 'utf8'));
  return { ...qwenConfigFrom(raw), ...over };
}

/** A tiny model whose every parameter is drawn from a seeded normal (same seed: same weights). */
export function tinyQwen(seed = 1, over: Partial<QwenConfig> = {}): Qwen2_5_VL {
  const m = new Qwen2_5_VL(tinyQwenConfig(over));
  let k = 0;
  for (const [, v] of m.namedParameters()) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.08, 'float32', seed * 1000 + k++)));
  return m;
}

/** Give every adapter a non-zero B (a fresh adapter is the identity), seeded. */
export function randomizeAdapters(model: Qwen2_5_VL, seed = 7, std = 0.1): void {
  let k = 0;
  for (const a of loraAdapters(model).values()) {
    tf.tidy(() => a.loraB.assign(tf.randomNormal(a.loraB.shape, 0, std, 'float32', seed * 1000 + k++)));
  }
}

/** Two sequences of 9 tokens, the first holding one 4x4-patch image (4 merged tokens); pixel values seeded. */
export function tinyInputs(model: Qwen2_5_VL, withImage = true): ForwardInputs & { dispose(): void } {
  const c = model.config;
  const v = c.vision_config;
  const L = 9;
  const img = withImage ? [c.vision_start_token_id, c.image_token_id, c.image_token_id, c.image_token_id, c.image_token_id, c.vision_end_token_id] : [11, 12, 13, 14, 15, 16];
  const ids = Int32Array.from([5, ...img, 7, 8, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
  const patchDim = v.in_chans * v.temporal_patch_size * v.patch_size * v.patch_size;
  const pixelValues = withImage ? tf.randomNormal([16, patchDim], 0, 1, 'float32', 99) as tf.Tensor2D : null;
  return {
    ids, batch: 2, length: L, pixelValues, grids: withImage ? [[1, 4, 4]] : [],
    dispose: () => pixelValues?.dispose(),
  };
}

/** Logits of a full forward [B, L, V] as a Float32Array. */
export function logits(model: Qwen2_5_VL, inp: ForwardInputs): Float32Array {
  const out = model.forward(inp);
  const d = out.logits.dataSync() as Float32Array;
  out.logits.dispose();
  return d;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dpad-lora-${tag}-`));
}
