/**
 * Teacher-forced, per-token-weighted supervised batches of the policy warm start, shared by the
 * main SFT loop (pretrain_policy.ts) and the alignment stage (pretrain_align.ts): examples with
 * their response-token weights, packed as left-padded prompts followed by right-padded responses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { referenceResponse, type WorldSample } from '../data/world/generator.ts';
import { sequenceLogProbs } from '../models/qwen2_5_vl/generate.ts';
import type { GridTHW } from '../models/qwen2_5_vl/vision.ts';
import { answerTokenSpan, encodePrompt, type Policy } from '../pipeline/policy.ts';

export interface WeightedExample {
  /** the prompt's ids (chat template, image tokens expanded) */
  ids: readonly number[];
  /** the response's ids, <|im_end|> last */
  resp: number[];
  /** [resp.length] the loss weight of each response token */
  weights: Float32Array;
  /** [patches, C*T*P*P] the prompt image's pixel values (owned by the example) */
  pixels: tf.Tensor2D;
  grid: GridTHW;
}

/**
 * The DPAD prompt and the sample's reference response: weight 1 per token, `answerWeight` on the
 * `<answer>` JSON and, when `groundWeight` is given, that weight on the think's final,
 * image-determined sentence ("It is <caption> in the <place>.").
 */
export function referenceExample(policy: Policy, s: WorldSample, answerWeight: number, groundWeight?: number): WeightedExample {
  const tok = policy.tokenizer;
  const enc = encodePrompt(policy, s.image, s.query);
  const text = referenceResponse(s, policy.viewSize);
  const resp = [...tok.encode(text), tok.tokenId('<|im_end|>')];
  const weights = new Float32Array(resp.length).fill(1);
  const [a, z] = answerTokenSpan(tok, text);
  weights.fill(answerWeight, a, z);
  if (groundWeight !== undefined) {
    const end = text.indexOf('</think>');
    const start = text.lastIndexOf('It is ', end);
    if (end < 0 || start < 0) throw new Error(`referenceExample: no final "It is ..." sentence before </think> in the reference response of ${s.id}`);
    weights.fill(groundWeight, tok.encode(text.slice(0, start)).length, tok.encode(text.slice(0, end)).length);
  }
  return { ids: enc.ids, resp, weights, pixels: enc.pixelValues, grid: enc.grid };
}

export interface PackedBatch {
  /** [B * (P + R)] prompts left-padded to P with `pad`, responses right-padded to R */
  ids: Int32Array;
  /** [B * (P + R)] 1 on prompt and response tokens, 0 on both paddings */
  attentionMask: Int32Array;
  /** [B * R] the response weights, 0 on padding */
  weights: Float32Array;
  batch: number;
  promptLength: number;
  responseLength: number;
}

/** Pack examples into one batch (ids, masks and weights only; the pixels stay with the examples). */
export function packBatch(ex: readonly Pick<WeightedExample, 'ids' | 'resp' | 'weights'>[], pad: number): PackedBatch {
  if (ex.length === 0) throw new Error('packBatch: no examples');
  for (const [b, e] of ex.entries()) {
    if (e.weights.length !== e.resp.length) throw new Error(`packBatch: example ${b} has ${e.weights.length} weights for ${e.resp.length} response tokens`);
  }
  const P = Math.max(...ex.map(e => e.ids.length));
  const R = Math.max(...ex.map(e => e.resp.length));
  const L = P + R;
  const B = ex.length;
  const ids = new Int32Array(B * L).fill(pad);
  const attentionMask = new Int32Array(B * L);
  const weights = new Float32Array(B * R);
  ex.forEach((e, b) => {
    ids.set(e.ids, b * L + P - e.ids.length);
    attentionMask.fill(1, b * L + P - e.ids.length, b * L + P + e.resp.length);
    ids.set(e.resp, b * L + P);
    weights.set(e.weights, b * R);
  });
  return { ids, attentionMask, weights, batch: B, promptLength: P, responseLength: R };
}

/**
 * Weighted teacher-forced NLL of a batch: -sum(w log p) / sum(w) over the response tokens.
 * Takes ownership of the examples' pixels (disposed here).
 */
export function weightedNll(policy: Policy, ex: WeightedExample[]): tf.Scalar {
  const p = packBatch(ex, policy.model.config.pad_token_id);
  return tf.tidy(() => {
    const pixels = tf.concat(ex.map(e => e.pixels), 0) as tf.Tensor2D;
    tf.dispose(ex.map(e => e.pixels));
    const lp = sequenceLogProbs(policy.model, {
      ids: p.ids, batch: p.batch, promptLength: p.promptLength, responseLength: p.responseLength,
      attentionMask: p.attentionMask, pixelValues: pixels, grids: ex.map(e => e.grid),
    }).logProbs; // [B, R]
    const w = tf.tensor2d(p.weights, [p.batch, p.responseLength]);
    return tf.neg(tf.div(tf.sum(tf.mul(lp, w)), tf.sum(w))) as tf.Scalar;
  });
}
