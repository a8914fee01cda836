/**
 * The teacher-forced response pass of Qwen2.5-VL with bounded activation memory (gradient
 * checkpointing per half decoder layer), built from the model's public parts: embed (vision
 * merge included), each layer's input_layernorm / self_attn / post_attention_layernorm / mlp, the
 * final norm and lmHead, ropeIndex / mropeTables for M-RoPE and decoderMask.
 *
 * A plain tf.variableGrads over model.forward keeps every op's saved tensors of every layer on the
 * tape until the backward pass ends: at 3B with a ~1,100-token prompt ~0.5-2 GB per decoder layer
 * (measured: one 3B-width layer's backward raises the peak RSS by 1.9 GiB), 20+ GB for the 36.
 * checkpointedGrads instead:
 *   1. runs the forward without a tape in 2N segments (x + attn(ln1 x), then h + mlp(ln2 h), as
 *      DecoderLayer.forward computes them), keeping only each segment's input [B, L, D];
 *   2. applies the final norm and the LM head to the R positions that predict the response only
 *      (P-1 .. L-2: [B, R, V] logits, not [B, L, V]) and differentiates the loss w.r.t. the last
 *      hidden state (and the head's parameters);
 *   3. walks the segments backwards: recomputes each from its input under a fresh tape and takes
 *      its gradient w.r.t. the input and the segment's parameters with the incoming gradient as dy;
 *      an MLP half is position-wise, so its recomputation and backward run in chunks of positions;
 *   4. if the embedding or the vision tower has parameters to train, recomputes embed likewise.
 * At most one half layer's activations are taped at a time. The result is tf.variableGrads's:
 * the loss and the gradients by variable name, equal to the plain pass's up to float rounding.
 *
 * Why not tf.customGrad with the recomputation inside gradFunc: in tfjs 4.22 a gradient computed
 * inside another gradient's backward pass (engine.gradients nested at gradientDepth 0) resets and
 * then nulls the engine's active tape, and the outer pass fails with "Cannot read properties of
 * null (reading 'forEach')". Here every gradient call is a top-level one.
 *
 * LoRA dropout: each recomputation restores its adapters' dropout seeds to what they were before
 * its forward, so it draws the same masks (an MLP half with dropout on is then not chunked);
 * unseeded dropout gets a random seed for the pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { SequenceBatch } from './generate.ts';
import type { LoraAdapter } from '../../nn/lora.ts';
import { loraAdapters } from './lora.ts';
import { decoderMask, type Qwen2_5_VL } from './model.ts';
import { mropeTables, ropeIndex } from './rope.ts';

/** Records the largest tf.memory().numBytes seen at its sample points (inside the gradient functions). */
export class MemoryPeak {
  peakBytes = 0;
  samples = 0;

  sample(): void {
    this.samples++;
    this.peakBytes = Math.max(this.peakBytes, tf.memory().numBytes);
  }
}

export interface CheckpointedOptions {
  /** sampled after each segment's forward, inside each recomputation (its activations taped) and after each backward step */
  memory?: MemoryPeak | null;
  /** positions per chunk of an MLP half's backward (default MLP_CHUNK) */
  mlpChunk?: number;
}

interface Prepared {
  /** [B, L, D] input embeddings */
  h0: tf.Tensor3D;
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** additive [B, 1, L, L] */
  mask: tf.Tensor4D;
  dispose(): void;
}

function check(model: Qwen2_5_VL, s: SequenceBatch): void {
  const { batch, promptLength: P, responseLength: R } = s;
  if (P < 1) throw new Error('checkpointed: a sequence needs at least one prompt token');
  if (R < 1) throw new Error('checkpointed: a sequence needs at least one response token');
  if (s.ids.length !== batch * (P + R)) throw new Error(`checkpointed: ${s.ids.length} ids for batch ${batch} x length ${P + R}`);
  if (P + R > model.config.max_position_embeddings) throw new Error(`checkpointed: ${P + R} positions exceed max_position_embeddings ${model.config.max_position_embeddings}`);
}

/** the embed call of model.forward for this batch */
function embedInputs(model: Qwen2_5_VL, s: SequenceBatch): tf.Tensor3D {
  return model.embed(s.ids, s.batch, s.promptLength + s.responseLength, s.pixelValues, s.grids ?? [], s.imageEmbeds);
}

/** Position tables, mask and input embeddings, as model.forward makes them (no cache). */
function prepare(model: Qwen2_5_VL, s: SequenceBatch): Prepared {
  const c = model.config;
  const { batch } = s;
  const L = s.promptLength + s.responseLength;
  const withImage = !!(s.pixelValues || s.imageEmbeds);
  const { positionIds } = ropeIndex(s.ids, s.attentionMask ?? null, batch, L, withImage ? s.grids ?? [] : [], c);
  const { cos, sin } = mropeTables(positionIds, batch, L, c);
  const mask = decoderMask(batch, L, 0, s.attentionMask ?? null);
  const h0 = embedInputs(model, s);
  return { h0, cos, sin, mask, dispose: () => tf.dispose([h0, cos, sin, mask]) };
}

/** final norm and LM head on the positions P-1 .. L-2 only: h [B, L, D] -> [B, R, V] */
function headOnResponse(model: Qwen2_5_VL, h: tf.Tensor3D, P: number, R: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, , d] = h.shape;
    return model.lmHead(model.model.norm.forward(h.slice([0, P - 1, 0], [b, R, d])) as tf.Tensor3D);
  });
}

/**
 * The logits [B, R, V] that predict the response tokens (positions P-1 .. L-2), without gradient:
 * model.forward's values, with the head applied to R positions instead of L (at a 1,100-token
 * prompt and V = 151,936 that is 0.67 GB per row less) and each layer's activations freed as it ends.
 */
export function checkpointedResponseLogits(model: Qwen2_5_VL, s: SequenceBatch): tf.Tensor3D {
  check(model, s);
  return tf.tidy(() => {
    const p = prepare(model, s);
    let h = p.h0;
    model.model.layers.forEach((layer, i) => {
      const next = layer.forward(h, p.cos, p.sin, p.mask, null, i);
      if (h !== p.h0) h.dispose();
      h = next;
    });
    return headOnResponse(model, h, s.promptLength, s.responseLength);
  });
}

/** parameters of a set of modules that are among `want` */
function pick(mods: { namedParameters(): Map<string, tf.Variable> }[], want: Set<tf.Variable>): tf.Variable[] {
  const out: tf.Variable[] = [];
  for (const m of mods) for (const v of m.namedParameters().values()) if (want.has(v) && !out.includes(v)) out.push(v);
  return out;
}

/** engine.gradients of f w.r.t. [x, ...vars] with dy; null grads (no connection) stay null */
function gradsOf(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor | null): { value: tf.Tensor; grads: (tf.Tensor | null)[] } {
  const eng = tf.engine() as unknown as { gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor | null, allowNoGradients: boolean): { value: tf.Tensor; grads: (tf.Tensor | null)[] } };
  return eng.gradients(f, xs, dy, true);
}

/**
 * tf.variableGrads(() => loss(responseLogits), vars) computed with per-layer recomputation.
 * `loss` maps the response logits [B, R, V] (positions P-1 .. L-2) to a scalar; it may read values
 * (dataSync) but runs once. Returns the loss and the gradients by variable name (the caller
 * disposes both); variables the loss does not depend on are left out, as variableGrads does.
 */
export function checkpointedGrads(
  model: Qwen2_5_VL, s: SequenceBatch, loss: (logits: tf.Tensor3D) => tf.Scalar, vars: tf.Variable[], opts: CheckpointedOptions = {},
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  check(model, s);
  const trainable = vars.filter(v => v.trainable);
  if (!trainable.length) throw new Error(`checkpointed: none of the ${vars.length} variables is trainable`);
  const chunk = opts.mlpChunk ?? MLP_CHUNK;
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`checkpointed: mlpChunk must be a positive integer, got ${chunk}`);
  const want = new Set(trainable);
  const mem = opts.memory ?? null;
  const nSeg = 2 * model.model.layers.length;
  const headVars = pick([model.model.norm, model.lm_head ?? model.model.embed_tokens], want);
  const segVars = Array.from({ length: nSeg }, (_, k) => pick(segmentModules(model, k), want));
  const embedVars = pick([model.model.embed_tokens, model.visual], want);
  // the lowest segment to differentiate through: nothing below the lowest stage with parameters
  const first = segVars.findIndex(v => v.length > 0);
  const stop = embedVars.length ? 0 : first < 0 ? nSeg : first;
  const seeds = dropoutSeeds(model);
  const acc = new Map<tf.Variable, tf.Tensor>();
  const add = (v: tf.Variable, g: tf.Tensor | null) => {
    if (!g) return;
    const prev = acc.get(v);
    if (prev) { acc.set(v, tf.add(prev, g)); prev.dispose(); g.dispose(); } else acc.set(v, g);
  };
  const embedBefore = seeds.get(EMBED);
  const p = prepare(model, s);
  const embedAfter = seeds.get(EMBED);
  const inputs: tf.Tensor3D[] = [p.h0]; // the input of each segment, then the last output
  let value: tf.Scalar | null = null;
  try {
    // 1. forward without a tape, keeping each segment's input (and the dropout seeds it started from)
    const before: (number | null)[][] = [];
    for (let k = 0; k < nSeg; k++) {
      before.push(seeds.get(k));
      inputs.push(runSegment(model, k, inputs[k], p));
      mem?.sample();
    }
    const after = Array.from({ length: nSeg }, (_, k) => seeds.get(k));
    // 2. the head and the loss, differentiated w.r.t. the last hidden state and the head's parameters
    const hN = inputs[nSeg];
    const head = gradsOf(() => loss(headOnResponse(model, hN, s.promptLength, s.responseLength)), [hN, ...headVars], null);
    value = head.value as tf.Scalar;
    let dh = head.grads[0];
    headVars.forEach((v, k) => add(v, head.grads[k + 1]));
    mem?.sample();
    if (!dh && stop < nSeg) throw new Error('checkpointed: the loss does not depend on the response logits');
    // 3. the segments backwards, each recomputed from its input under its own tape
    for (let k = nSeg - 1; k >= stop; k--) {
      const x = inputs[k];
      const [B, L, D] = x.shape;
      // an MLP is position-wise: its backward runs in chunks of positions (not with dropout: its masks are drawn per call)
      const rows = k % 2 === 1 && !seeds.dropoutOn(k) ? chunk : L;
      const parts: tf.Tensor[] = [];
      seeds.set(k, before[k]);
      for (let a = 0; a < L; a += rows) {
        const n = Math.min(rows, L - a);
        const xc = n === L ? x : x.slice([0, a, 0], [B, n, D]);
        const dyc = n === L ? dh! : dh!.slice([0, a, 0], [B, n, D]);
        const r = gradsOf(() => {
          const y = runSegment(model, k, xc, p);
          mem?.sample();
          return y;
        }, [xc, ...segVars[k]], dyc);
        r.value.dispose();
        parts.push(r.grads[0] ?? tf.zerosLike(xc));
        segVars[k].forEach((v, j) => add(v, r.grads[j + 1]));
        if (xc !== x) tf.dispose([xc, dyc]);
      }
      seeds.set(k, after[k]);
      dh!.dispose();
      dh = parts.length === 1 ? parts[0] : tf.concat(parts, 1);
      if (parts.length > 1) tf.dispose(parts);
      inputs[k + 1].dispose();
      mem?.sample();
    }
    // 4. the embedding / vision tower, when they train
    if (embedVars.length) {
      seeds.set(EMBED, embedBefore);
      const r = gradsOf(() => embedInputs(model, s), embedVars, dh!);
      seeds.set(EMBED, embedAfter);
      r.value.dispose();
      embedVars.forEach((v, k) => add(v, r.grads[k]));
      mem?.sample();
    }
    dh?.dispose();
    const grads: tf.NamedTensorMap = {};
    for (const v of trainable) { const g = acc.get(v); if (g) grads[v.name] = g; }
    if (!Object.keys(grads).length) throw new Error('checkpointed: the loss depends on none of the variables');
    return { value, grads };
  } catch (e) {
    value?.dispose();
    tf.dispose([...acc.values()]);
    throw e;
  } finally {
    seeds.restore();
    tf.dispose(inputs.filter(t => !t.isDisposed));
    p.dispose();
  }
}

/** positions per chunk of an MLP segment's backward (at 3B: [256, 11008] f32 activations are 11 MB each) */
export const MLP_CHUNK = 256;

/** segment k: the attention half (k even) or the MLP half (k odd) of decoder layer k >> 1 */
function segmentModules(model: Qwen2_5_VL, k: number) {
  const layer = model.model.layers[k >> 1];
  return k % 2 ? [layer.mlp, layer.post_attention_layernorm] : [layer.self_attn, layer.input_layernorm];
}

/** x + attn(input_layernorm(x)) or x + mlp(post_attention_layernorm(x)): DecoderLayer.forward in two halves */
function runSegment(model: Qwen2_5_VL, k: number, x: tf.Tensor3D, p: Prepared): tf.Tensor3D {
  const i = k >> 1;
  const layer = model.model.layers[i];
  return tf.tidy(() => (k % 2
    ? tf.add(x, layer.mlp.forward(layer.post_attention_layernorm.forward(x)))
    : tf.add(x, layer.self_attn.forward(layer.input_layernorm.forward(x) as tf.Tensor3D, p.cos, p.sin, p.mask, null, i))) as tf.Tensor3D);
}

/** the stage key of the vision tower's adapters (embed) */
const EMBED = -1;

/**
 * The LoRA adapters' dropout seeds of each segment (and of the vision tower, EMBED), to replay a
 * segment's masks in its recomputation; adapters with dropout on and no seed get a random one for the pass (restored after).
 */
function dropoutSeeds(model: Qwen2_5_VL) {
  const byLayer = new Map<number, LoraAdapter[]>();
  const unseeded: LoraAdapter[] = [];
  for (const [name, a] of loraAdapters(model)) {
    if (a.training && a.dropout > 0 && a.dropoutSeed === null) {
      unseeded.push(a);
      a.dropoutSeed = Math.floor(Math.random() * 2 ** 30);
    }
    const m = /(?:^|\.)layers\.(\d+)\.(self_attn|mlp)\./.exec(name);
    const k = name.includes('visual') ? EMBED : m ? 2 * Number(m[1]) + (m[2] === 'mlp' ? 1 : 0) : null;
    if (k !== null) byLayer.set(k, [...(byLayer.get(k) ?? []), a]);
  }
  return {
    get: (i: number) => (byLayer.get(i) ?? []).map(a => a.dropoutSeed),
    set: (i: number, vals: (number | null)[]) => (byLayer.get(i) ?? []).forEach((a, k) => (a.dropoutSeed = vals[k])),
    /** whether segment k's adapters apply dropout now */
    dropoutOn: (k: number) => (byLayer.get(k) ?? []).some(a => a.training && a.dropout > 0 && a.enabled && !a.merged),
    restore: () => { for (const a of unseeded) a.dropoutSeed = null; },
  };
}
