/**
 * Qwen2_5_VLForConditionalGeneration: the vision tower, the Qwen2.5 decoder (RMSNorm, GQA
 * attention with q/k/v biases and M-RoPE, SwiGLU MLP) and the LM head (tied or not). Image pad
 * tokens are replaced by vision embeddings in order. Parameter names follow the released
 * checkpoints ('visual.*', 'model.*', 'lm_head.weight').
 *
 * A tied LM head outside gradient recording multiplies by a transposed copy of the embedding
 * [D, V] held by the model (transposing [V, D] per token dominated a decode step), keyed by the weight's
 * current data: an optimizer step or a load (Variable.assign) replaces it, so the copy is rebuilt
 * on the next use and never goes stale. While a gradient tape records (tf.variableGrads), the
 * head transposes the variable itself, so the tied weight gets the head's gradient; both paths
 * multiply by the same [D, V] matrix, so training and inference logits are identical. On the native
 * backend both paths multiply by the embedding itself, read transposed (faster there, and no copy
 * is used).
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedDecodeAttention, KVCache, MASK_VALUE, scaledDotProductAttention } from '../../nn/attention.ts';
import { broadcastsWeights, Embedding, linear, Linear, RMSNorm } from '../../nn/layers.ts';
import { GatedMlp } from '../../nn/mlp.ts';
import { Module } from '../../nn/module.ts';
import { applyRotary, applyRotarySwapped, swappedRotaryTables } from '../../nn/rotary.ts';
import type { QwenConfig } from './config.ts';
import { mropeTables, ropeIndex } from './rope.ts';
import { QwenVision, type GridTHW } from './vision.ts';

class DecoderAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;

  constructor(parent: Module, prefix: string, c: QwenConfig) {
    super(parent, prefix);
    this.heads = c.num_attention_heads;
    this.kvHeads = c.num_key_value_heads;
    this.headDim = c.hidden_size / c.num_attention_heads;
    this.q_proj = new Linear(this, 'q_proj', c.hidden_size, this.heads * this.headDim);
    this.k_proj = new Linear(this, 'k_proj', c.hidden_size, this.kvHeads * this.headDim);
    this.v_proj = new Linear(this, 'v_proj', c.hidden_size, this.kvHeads * this.headDim);
    this.o_proj = new Linear(this, 'o_proj', this.heads * this.headDim, c.hidden_size, { bias: false });
  }

  /**
   * x [B, L, D]; cos/sin [B, 1, L, d]; mask additive [B, 1, L, Lk]; cache: past keys/values of this
   * layer; rot: the tables of the single-position path (decodeStep), else null
   */
  forward(x: tf.Tensor3D, cos: tf.Tensor, sin: tf.Tensor, mask: tf.Tensor, cache: KVCache | null, layer: number, rot: DecodeTables | null = null): tf.Tensor3D {
    if (rot && x.shape[1] === 1) return this.decodeStep(x, cos, mask, cache, layer, rot);
    return tf.tidy(() => {
      const [b, l] = x.shape;
      const split = (t: tf.Tensor, h: number) => tf.transpose(t.reshape([b, l, h, this.headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
      const q = applyRotary(split(this.q_proj.forward(x), this.heads), cos, sin) as tf.Tensor4D;
      let k = applyRotary(split(this.k_proj.forward(x), this.kvHeads), cos, sin) as tf.Tensor4D;
      let v = split(this.v_proj.forward(x), this.kvHeads);
      if (cache) [k, v] = cache.update(layer, k, v);
      const o = scaledDotProductAttention(q, k, v, { mask });
      return this.o_proj.forward(tf.transpose(o, [0, 2, 1, 3]).reshape([b, l, this.heads * this.headDim])) as tf.Tensor3D;
    });
  }

  /**
   * One position per row (a cached decode step), with fewer ops and the same values: at L = 1 the
   * head transposes are reshapes, q is read directly as [B, Hkv, g, d] (the grouped layout), the
   * rotary half-swap is one gather, and attention skips the mask reshapes.
   */
  private decodeStep(x: tf.Tensor3D, cos: tf.Tensor, mask: tf.Tensor, cache: KVCache | null, layer: number, rot: DecodeTables): tf.Tensor3D {
    return tf.tidy(() => {
      const b = x.shape[0];
      const d = this.headDim;
      const g = this.heads / this.kvHeads;
      const fused = rot.qkv?.[layer] ?? null;
      let q: tf.Tensor4D;
      let k: tf.Tensor4D;
      let v: tf.Tensor4D;
      if (fused) {
        // one product for q, k, v; columns grouped per kv head as [its g q heads, k, v] (fuseQkv)
        const heads = linear(x, fused.w, fused.b).reshape([b, this.kvHeads, g + 2, d]);
        const [qk, vv] = tf.split(heads, [g + 1, 1], 2);
        [q, k] = tf.split(applyRotarySwapped(qk, cos, rot.sinSigned, rot.perm), [g, 1], 2) as tf.Tensor4D[];
        v = vv as tf.Tensor4D;
      } else {
        q = applyRotarySwapped(this.q_proj.forward(x).reshape([b, this.kvHeads, g, d]), cos, rot.sinSigned, rot.perm) as tf.Tensor4D;
        k = applyRotarySwapped(this.k_proj.forward(x).reshape([b, this.kvHeads, 1, d]), cos, rot.sinSigned, rot.perm) as tf.Tensor4D;
        v = this.v_proj.forward(x).reshape([b, this.kvHeads, 1, d]) as tf.Tensor4D;
      }
      if (cache) [k, v] = cache.update(layer, k, v);
      const o = groupedDecodeAttention(q, k, v, mask); // [B, Hkv, g, d]
      return this.o_proj.forward(o.reshape([b, 1, this.heads * d])) as tf.Tensor3D;
    });
  }
}

/** the rotary tables of the single-position decode path (rotary.ts swappedRotaryTables), and fused projections */
interface DecodeTables {
  perm: tf.Tensor1D;
  sinSigned: tf.Tensor;
  qkv?: DecodeWeights['qkv'] | null;
}

/**
 * q/k/v projections fused for the decode path (Qwen2_5_VL.fuseQkv), per layer: weight [D, Hkv*(g+2)*d]
 * with the columns grouped per kv head (its g query heads, its key, its value), bias likewise; null
 * for a layer with an adapter on a projection (it keeps the separate products). Owned by the caller.
 */
export interface DecodeWeights {
  qkv: ({ w: tf.Tensor2D; b: tf.Tensor1D | null } | null)[];
  dispose(): void;
}

class DecoderLayer extends Module {
  readonly self_attn: DecoderAttention;
  readonly mlp: GatedMlp;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;

  constructor(parent: Module, prefix: string, c: QwenConfig) {
    super(parent, prefix);
    this.self_attn = new DecoderAttention(this, 'self_attn', c);
    this.mlp = new GatedMlp(this, 'mlp', c.hidden_size, c.intermediate_size, { act: c.hidden_act });
    this.input_layernorm = new RMSNorm(this, 'input_layernorm', c.hidden_size, { eps: c.rms_norm_eps });
    this.post_attention_layernorm = new RMSNorm(this, 'post_attention_layernorm', c.hidden_size, { eps: c.rms_norm_eps });
  }

  forward(x: tf.Tensor3D, cos: tf.Tensor, sin: tf.Tensor, mask: tf.Tensor, cache: KVCache | null, layer: number, rot: DecodeTables | null = null): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.self_attn.forward(this.input_layernorm.forward(x) as tf.Tensor3D, cos, sin, mask, cache, layer, rot)) as tf.Tensor3D;
      return tf.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))) as tf.Tensor3D;
    });
  }
}

/** The decoder stack under 'model.*'. */
class TextModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: DecoderLayer[];
  readonly norm: RMSNorm;

  constructor(parent: Module, prefix: string, c: QwenConfig) {
    super(parent, prefix);
    this.embed_tokens = new Embedding(this, 'embed_tokens', c.vocab_size, c.hidden_size);
    this.layers = Array.from({ length: c.num_hidden_layers }, (_, i) => new DecoderLayer(this, `layers.${i}`, c));
    this.norm = new RMSNorm(this, 'norm', c.hidden_size, { eps: c.rms_norm_eps });
  }
}

export interface ForwardInputs {
  /** [B, L] int32 */
  ids: Int32Array;
  batch: number;
  length: number;
  /** [B, L] 1 = token, 0 = left pad; null = all ones */
  attentionMask?: Int32Array | null;
  /** [N, C*T*P*P] processor output, consumed by image pad tokens in order */
  pixelValues?: tf.Tensor2D | null;
  grids?: GridTHW[];
  /** precomputed vision output [n, D] for the image tokens (instead of pixelValues), e.g. a frozen tower's */
  imageEmbeds?: tf.Tensor2D | null;
  /** [3, B, L]: computed (get_rope_index) when absent */
  positionIds?: Int32Array;
  cache?: KVCache | null;
  /** fused projections for the single-position (decode) steps (Qwen2_5_VL.fuseQkv); null: the separate products */
  decodeWeights?: DecodeWeights | null;
  /**
   * keys' padding mask for the whole cached sequence [B, past + L] when decoding with a cache
   * (the prompt's left padding stays masked)
   */
  keyMask?: Int32Array | null;
  /** return hidden states of these positions only: 'last' or all */
  positions?: 'all' | 'last';
}

export interface ForwardOutput {
  /** [B, L, V] or [B, V] */
  logits: tf.Tensor;
  ropeDeltas: Int32Array;
}

export class Qwen2_5_VL extends Module {
  readonly visual: QwenVision;
  readonly model: TextModel;
  readonly lm_head: Linear | null;
  readonly config: QwenConfig;
  /** hold the tied head's transposed copy for inference (false: transpose on every call, less memory) */
  cacheTiedHead = true;
  /** the tied head's [D, V] copy and the embedding data it was made from */
  private tiedHeadT: { dataId: object; t: tf.Tensor2D } | null = null;

  constructor(config: QwenConfig) {
    super(null, '');
    this.config = config;
    this.visual = new QwenVision(this, 'visual', config.vision_config);
    this.model = new TextModel(this, 'model', config);
    this.lm_head = config.tie_word_embeddings ? null : new Linear(this, 'lm_head', config.hidden_size, config.vocab_size, { bias: false });
    // made now, so the model's tensor count stays the same over its life (a change of weights swaps it)
    if (!this.lm_head) this.tiedHeadTransposed();
  }

  /** Input embeddings [B, L, D] with image pad tokens replaced by the vision tower's output. */
  embed(ids: Int32Array, batch: number, length: number, pixelValues: tf.Tensor2D | null | undefined, grids: GridTHW[], imageEmbeds?: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const c = this.config;
      for (const id of ids) if (id < 0 || id >= c.vocab_size) throw new Error(`qwen: token id ${id} outside the vocabulary of ${c.vocab_size}`);
      const idT = tf.tensor2d(ids, [batch, length], 'int32');
      let emb = this.model.embed_tokens.forward(idT) as tf.Tensor3D;
      const slots: number[] = [];
      ids.forEach((id, i) => { if (id === c.image_token_id) slots.push(i); });
      if (!pixelValues && !imageEmbeds) {
        if (slots.length) throw new Error(`qwen: ${slots.length} image tokens but no pixel_values`);
        return emb;
      }
      const img = imageEmbeds ?? this.visual.forward(pixelValues!, grids); // [n, D]
      if (img.shape[0] !== slots.length) throw new Error(`qwen: image features and image tokens do not match: tokens ${slots.length}, features ${img.shape[0]}`);
      // scatter rows: gather from [text rows ; image rows] by a source index
      const flat = emb.reshape([batch * length, c.hidden_size]);
      const src = new Int32Array(batch * length);
      for (let i = 0; i < src.length; i++) src[i] = i;
      slots.forEach((s, k) => (src[s] = batch * length + k));
      emb = tf.gather(tf.concat([flat, img], 0), tf.tensor1d(src, 'int32')).reshape([batch, length, c.hidden_size]) as tf.Tensor3D;
      return emb;
    });
  }

  /**
   * One forward pass. Without a cache it is a full (prefill / teacher-forced) pass; with a cache it
   * appends the new positions to it. Returns logits for every position or only the last.
   */
  forward(inp: ForwardInputs): ForwardOutput {
    const c = this.config;
    const { batch, length } = inp;
    const grids = inp.grids ?? [];
    const total = (inp.cache?.length ?? 0) + length;
    if (total > c.max_position_embeddings) throw new Error(`qwen: ${total} positions exceed max_position_embeddings ${c.max_position_embeddings} (prompt too long)`);
    if (inp.ids.length !== batch * length) throw new Error(`qwen: ${inp.ids.length} ids for batch ${batch} x length ${length}`);
    let positionIds = inp.positionIds;
    let ropeDeltas: Int32Array = new Int32Array(batch);
    if (!positionIds) {
      const r = ropeIndex(inp.ids, inp.attentionMask ?? null, batch, length, inp.pixelValues || inp.imageEmbeds ? grids : [], c);
      positionIds = r.positionIds;
      ropeDeltas = r.ropeDeltas;
    }
    const logits = tf.tidy(() => {
      let h = this.embed(inp.ids, batch, length, inp.pixelValues, grids, inp.imageEmbeds);
      const { cos, sin } = mropeTables(positionIds!, batch, length, c);
      const past = inp.cache?.length ?? 0;
      const keyMask = inp.keyMask ?? inp.attentionMask ?? null;
      const mask = decoderMask(batch, length, past, keyMask);
      // one position per row outside gradient recording (a cached decode step): the fewer-ops path
      const rot = length === 1 && !tf.engine().isTapeOn() ? { ...swappedRotaryTables(sin), qkv: inp.decodeWeights?.qkv ?? null } : null;
      this.model.layers.forEach((layer, i) => {
        h = layer.forward(h, cos, sin, mask, inp.cache ?? null, i, rot);
      });
      let out = this.model.norm.forward(h) as tf.Tensor3D;
      if (inp.positions === 'last' && length > 1) out = out.slice([0, length - 1, 0], [batch, 1, c.hidden_size]);
      const lg = this.lmHead(out);
      return inp.positions === 'last' ? lg.reshape([batch, c.vocab_size]) : lg;
    });
    return { logits, ropeDeltas };
  }

  /** hidden [B, L, D] -> logits [B, L, V] */
  lmHead(hidden: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      if (this.lm_head) return this.lm_head.forward(hidden) as tf.Tensor3D;
      const [b, l, d] = hidden.shape;
      const w = this.model.embed_tokens.weight as tf.Tensor2D; // [V, D]
      if (tf.getBackend() === 'tensorflow') {
        // native: the product with the embedding read transposed in place (oneDNN's GEMV streams
        // [V, D] rows 1.5-2.5x faster than the [D, V] copy at V = 32768; bit-identical), the same
        // product with or without a tape; no tape: [B, L, D] x [V, D]^T broadcasts, no reshapes
        if (broadcastsWeights()) return tf.matMul(hidden, w as unknown as tf.Tensor3D, false, true);
        return tf.matMul(hidden.reshape([b * l, d]) as tf.Tensor2D, w, false, true).reshape([b, l, this.config.vocab_size]) as tf.Tensor3D;
      }
      // the same [D, V] product on both paths (identical logits); under a tape through the variable
      const wt = this.cacheTiedHead && !tf.engine().isTapeOn() ? this.tiedHeadTransposed() : (tf.transpose(w) as tf.Tensor2D);
      const lg = tf.matMul(hidden.reshape([b * l, d]) as tf.Tensor2D, wt);
      return lg.reshape([b, l, this.config.vocab_size]) as tf.Tensor3D;
    });
  }

  /** The embedding transposed [D, V], rebuilt when the weight's data changed since it was made. */
  private tiedHeadTransposed(): tf.Tensor2D {
    const w = this.model.embed_tokens.weight;
    const dataId = w.dataId as object;
    if (this.tiedHeadT?.dataId !== dataId) {
      this.tiedHeadT?.t.dispose();
      this.tiedHeadT = { dataId, t: tf.keep(tf.transpose(w) as tf.Tensor2D) };
    }
    return this.tiedHeadT.t;
  }

  /**
   * The q/k/v projections of every decoder layer as one product each (DecodeWeights), for a run of
   * cached decode steps (generate builds them once per call and disposes them): on the native
   * backend a step is per-op bound, and this saves 8 of its ~46 ops per layer. Transient memory:
   * one more copy of the q/k/v weights.
   */
  fuseQkv(): DecodeWeights {
    const qkv = this.model.layers.map(layer => {
      const a = layer.self_attn;
      if (a.q_proj.adapter || a.k_proj.adapter || a.v_proj.adapter) return null;
      const bs = [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias];
      const withBias = bs.every(t => t);
      if (!withBias && bs.some(t => t)) return null; // mixed biases: keep the separate products
      const D = a.q_proj.inFeatures;
      const [hkv, g, d] = [a.kvHeads, a.heads / a.kvHeads, a.headDim];
      const w = tf.tidy(() => tf.concat([a.q_proj.weight.reshape([D, hkv, g * d]), a.k_proj.weight.reshape([D, hkv, d]), a.v_proj.weight.reshape([D, hkv, d])], 2).reshape([D, hkv * (g + 2) * d]) as tf.Tensor2D);
      const b = withBias ? tf.tidy(() => tf.concat([bs[0]!.reshape([hkv, g * d]), bs[1]!.reshape([hkv, d]), bs[2]!.reshape([hkv, d])], 1).reshape([hkv * (g + 2) * d]) as tf.Tensor1D) : null;
      return { w, b };
    });
    return { qkv, dispose: () => { for (const f of qkv) if (f) tf.dispose([f.w, ...(f.b ? [f.b] : [])]); } };
  }

  /** Drop the tied head's held copy to save memory (it is rebuilt on the next inference call). */
  releaseTiedHead(): void {
    this.tiedHeadT?.t.dispose();
    this.tiedHeadT = null;
  }

  dispose(): void {
    this.releaseTiedHead();
    super.dispose();
  }
}

/**
 * The additive mask [B, 1, L, past + L]: causal over the whole (cached + new) sequence, and
 * padded keys masked. A row with no visible key keeps the minimum everywhere (uniform weights),
 * as the reference's masks do.
 */
export function decoderMask(batch: number, length: number, past: number, keyMask: Int32Array | null): tf.Tensor4D {
  const lk = past + length;
  const m = new Float32Array(batch * length * lk);
  for (let b = 0; b < batch; b++) for (let i = 0; i < length; i++) for (let j = 0; j < lk; j++) {
    const padded = keyMask ? keyMask[b * lk + j] === 0 : false;
    if (j > past + i || padded) m[(b * length + i) * lk + j] = MASK_VALUE;
  }
  return tf.tensor4d(m, [batch, 1, length, lk]);
}
