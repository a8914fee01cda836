/**
 * A shared Fourier code of coordinates, for a readout that is linear end to end. With every
 * coordinate 0..view one token (tokenizer.ts numberMerges), a fresh policy sees 113 unrelated
 * classes, and a feature that says "x = 41" as a plain number must be turned into token 41 by a
 * learned threshold for each class: on the world the decoder did not learn that in 600 steps even
 * for a scene of one object, where it read the object's colour within 50 (RESULTS.md). So the dense
 * vision stage (cells.ts) trains the tower's tokens to carry each coordinate as this code, and the
 * number tokens' (tied) embeddings start with the code of their value: the logit of token n for a
 * feature coded at x is then a sum of cos(w (x - n)), largest at n = x, and the decoder only has to
 * carry the code from the image token to the answer.
 *
 * The code of value v (view pixels): [cos(w_0 v), sin(w_0 v), ..., cos(w_{F-1} v), sin(w_{F-1} v)]
 * with periods from NUMBER_CODE_MIN_PERIOD px to 4 x view, geometrically spaced. The shortest
 * period sets the readout's resolution (about a quarter of it); 24 px asks the tower for the
 * coarse place SAM2 needs (RESULTS.md), where an 8-px period wanted its phase right to a pixel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import type { PolicyTokenizer } from '../models/qwen2_5_vl/tokenizer.ts';

/** frequencies of the code */
export const NUMBER_CODE_FREQUENCIES = 6;
/** the shortest period, in view pixels */
export const NUMBER_CODE_MIN_PERIOD = 24;

export function numberCode(value: number, view: number, frequencies = NUMBER_CODE_FREQUENCIES): Float32Array {
  const out = new Float32Array(2 * frequencies);
  for (let j = 0; j < frequencies; j++) {
    const period = NUMBER_CODE_MIN_PERIOD * Math.pow((4 * view) / NUMBER_CODE_MIN_PERIOD, frequencies > 1 ? j / (frequencies - 1) : 0);
    const w = (2 * Math.PI) / period;
    out[2 * j] = Math.cos(w * value);
    out[2 * j + 1] = Math.sin(w * value);
  }
  return out;
}

/**
 * Write `scale` x the code into the first 2F dimensions of the embedding rows of the tokens
 * "0".."view" and "Ġ0".."Ġview" that are single tokens; returns how many rows were set. The
 * default scale gives the code the mean row norm of the embedding as it is.
 */
export function initNumberEmbeddings(model: Qwen2_5_VL, tokenizer: PolicyTokenizer, view: number, frequencies = NUMBER_CODE_FREQUENCIES): number {
  const e = [...model.namedParameters()].find(([n]) => n === 'model.embed_tokens.weight')?.[1];
  if (!e) throw new Error('initNumberEmbeddings: the model has no model.embed_tokens.weight');
  const [V, D] = e.shape as [number, number];
  if (2 * frequencies > D) throw new Error(`initNumberEmbeddings: ${frequencies} frequencies need ${2 * frequencies} dimensions, the embedding has ${D}`);
  const rows = e.arraySync() as number[][];
  const meanNorm = rows.reduce((s, r) => s + Math.hypot(...r), 0) / V;
  const scale = meanNorm / Math.sqrt(frequencies);
  let set = 0;
  for (let v = 0; v <= view; v++) {
    const code = numberCode(v, view, frequencies);
    for (const text of [String(v), ` ${v}`]) {
      const ids = tokenizer.encode(text);
      if (ids.length !== 1) continue;
      for (let d = 0; d < code.length; d++) rows[ids[0]][d] = code[d] * scale;
      set++;
    }
  }
  e.assign(tf.tensor2d(rows, [V, D]));
  return set;
}
