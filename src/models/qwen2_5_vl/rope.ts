/**
 * Multimodal RoPE of Qwen2.5-VL: get_rope_index (3-D positions t/h/w for image tokens, 1-D for
 * text, with left padding) and the per-section cos/sin tables of apply_multimodal_rotary_pos_emb.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { QwenConfig } from './config.ts';
import { inverseFrequenciesF32 } from '../../nn/rotary.ts';
import type { GridTHW } from './vision.ts';

export interface RopeIndex {
  /** [3, B, L] */
  positionIds: Int32Array;
  /** [B] : max position + 1 - L */
  ropeDeltas: Int32Array;
  batch: number;
  length: number;
}

/**
 * get_rope_index for images (no video): ids [B, L], mask [B, L] (1 = token, 0 = left pad),
 * grids consumed in order across the batch. Padded positions get 1, as the reference leaves them.
 */
export function ropeIndex(ids: Int32Array, mask: Int32Array | null, batch: number, length: number, grids: GridTHW[], c: QwenConfig): RopeIndex {
  const pos = new Int32Array(3 * batch * length);
  const deltas = new Int32Array(batch);
  const merge = c.vision_config.spatial_merge_size;
  if (grids.length === 0) {
    for (let b = 0; b < batch; b++) {
      let p = -1;
      let maxP = -Infinity;
      for (let l = 0; l < length; l++) {
        const m = mask ? mask[b * length + l] : 1;
        p += m;
        const v = m ? p : 1;
        for (let a = 0; a < 3; a++) pos[(a * batch + b) * length + l] = v;
        if (v > maxP) maxP = v;
      }
      deltas[b] = mask ? maxP + 1 - length : 0;
    }
    return { positionIds: pos, ropeDeltas: deltas, batch, length };
  }
  pos.fill(1);
  let imageIndex = 0;
  for (let b = 0; b < batch; b++) {
    const cols: number[] = [];
    const toks: number[] = [];
    for (let l = 0; l < length; l++) if (!mask || mask[b * length + l] === 1) { cols.push(l); toks.push(ids[b * length + l]); }
    let images = 0;
    for (let i = 0; i + 1 < toks.length; i++) if (toks[i] === c.vision_start_token_id && toks[i + 1] === c.image_token_id) images++;
    const t3: number[][] = [[], [], []];
    let st = 0;
    let next = 0; // max position so far + 1
    for (let k = 0; k < images; k++) {
      const ed = toks.indexOf(c.image_token_id, st);
      const grid = grids[imageIndex++];
      if (!grid) throw new Error(`qwen rope_index: row ${b} has more images than image_grid_thw (${grids.length})`);
      const [gt, gh, gw] = [grid[0], grid[1] / merge, grid[2] / merge];
      const textLen = ed - st;
      for (let i = 0; i < textLen; i++) for (let a = 0; a < 3; a++) t3[a].push(next + i);
      const base = next + textLen;
      let mx = next + textLen - 1;
      for (let t = 0; t < gt; t++) for (let y = 0; y < gh; y++) for (let x = 0; x < gw; x++) {
        const tt = 0; // images have second_per_grid_t = 0, so every temporal index is 0
        t3[0].push(base + tt); t3[1].push(base + y); t3[2].push(base + x);
        mx = Math.max(mx, base + tt, base + y, base + x);
      }
      next = mx + 1;
      st = ed + gt * gh * gw;
    }
    if (st < toks.length) for (let i = 0; i < toks.length - st; i++) for (let a = 0; a < 3; a++) t3[a].push(next + i);
    let maxP = 0;
    cols.forEach((col, j) => {
      for (let a = 0; a < 3; a++) {
        pos[(a * batch + b) * length + col] = t3[a][j];
        if (t3[a][j] > maxP) maxP = t3[a][j];
      }
    });
    deltas[b] = maxP + 1 - length;
  }
  return { positionIds: pos, ropeDeltas: deltas, batch, length };
}

/**
 * cos/sin [B, 1, L, headDim] for position ids [3, B, L]: the frequencies of each mrope section
 * (repeated for the two halves) take the t, h or w position in turn.
 */
export function mropeTables(positionIds: Int32Array, batch: number, length: number, c: QwenConfig): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const headDim = c.hidden_size / c.num_attention_heads;
  const inv = inverseFrequenciesF32(headDim, c.rope_theta);
  const half = headDim / 2;
  // which axis (0 t, 1 h, 2 w) drives each of the half-dim frequencies
  const axis = new Int32Array(half);
  let o = 0;
  c.mrope_section.forEach((s, i) => { for (let k = 0; k < s; k++) axis[o++] = i % 3; });
  const ang = new Float32Array(batch * length * headDim);
  for (let b = 0; b < batch; b++) for (let l = 0; l < length; l++) for (let i = 0; i < half; i++) {
    const p = positionIds[(axis[i] * batch + b) * length + l];
    const v = Math.fround(p * inv[i]);
    ang[(b * length + l) * headDim + i] = v;
    ang[(b * length + l) * headDim + half + i] = v;
  }
  return tf.tidy(() => {
    const a = tf.tensor4d(ang, [batch, 1, length, headDim]);
    return { cos: tf.cos(a) as tf.Tensor4D, sin: tf.sin(a) as tf.Tensor4D };
  });
}
