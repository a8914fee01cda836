/**
 * Attention: scaled dot-product attention with additive masks and grouped KV heads,
 * a multi-head attention module with separate q/k/v/o projections, and a KV cache.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear } from './layers.ts';
import { Module } from './module.ts';

/** Large negative used for masked logits (finite, so rows that are fully masked stay finite). */
export const MASK_VALUE = -3.4028234663852886e38;

/** Repeat each KV head `n` times: [B, Hkv, L, D] -> [B, Hkv*n, L, D] (GQA). */
export function repeatKv(x: tf.Tensor4D, n: number): tf.Tensor4D {
  if (n === 1) return x;
  return tf.tidy(() => {
    const [b, h, l, d] = x.shape;
    // rank-4 tile (tfjs has no rank-5 tile gradient): [B, Hkv, 1, L*D] -> [B, Hkv, n, L*D]
    return tf.tile(x.reshape([b, h, 1, l * d]), [1, 1, n, 1]).reshape([b, h * n, l, d]) as tf.Tensor4D;
  });
}

/**
 * softmax(q k^T * scale + mask) v.
 * q [B, H, Lq, D], k/v [B, Hkv, Lk, D] with H a multiple of Hkv; mask additive, broadcastable
 * to [B, H, Lq, Lk]. Returns [B, H, Lq, D].
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D,
  opts: { mask?: tf.Tensor | null; scale?: number; chunkElements?: number } = {},
): tf.Tensor4D {
  return tf.tidy(() => {
    const h = q.shape[1];
    const hkv = k.shape[1];
    if (h % hkv) throw new Error(`attention: ${h} query heads are not a multiple of ${hkv} kv heads`);
    const g = h / hkv;
    const scale = opts.scale ?? 1 / Math.sqrt(q.shape[3]);
    const [b, , lq, dh] = q.shape;
    const lk = k.shape[2];
    // grouped-query attention without copying the kv heads: the g query heads that share a kv head
    // are contiguous, so q [B, H, n, D] is read as [B, Hkv, g*n, D] against k, v [B, Hkv, Lk, D]
    // (repeating the kv cache with tile cost ~80% of a decoding step on wasm)
    const grouped = g > 1 && (!opts.mask || (opts.mask.rank === 4 && opts.mask.shape[1] === 1));
    const kk = grouped ? k : repeatKv(k, g);
    const vv = grouped ? v : repeatKv(v, g);
    // bound the [B, H, Lq, Lk] score tensor: long sequences (SAM2's global attention at 1024 px)
    // are processed in query chunks, which keeps the wasm heap within its 4 GiB
    const chunk = Math.max(1, Math.floor((opts.chunkElements ?? ATTENTION_CHUNK_ELEMENTS) / (b * h * lk)));
    const attend = (qc: tf.Tensor4D, mask: tf.Tensor | null | undefined) => {
      if (!grouped) {
        let logits = tf.mul(tf.matMul(qc, kk, false, true), scale);
        if (mask) logits = tf.add(logits, mask);
        return tf.matMul(tf.softmax(logits, -1), vv) as tf.Tensor4D;
      }
      const n = qc.shape[2];
      let logits: tf.Tensor = tf.mul(tf.matMul(qc.reshape([b, hkv, g * n, dh]), kk, false, true), scale); // [B, Hkv, g*n, Lk]
      if (mask) logits = tf.add(logits.reshape([b, hkv, g, n, lk]), mask.reshape([mask.shape[0] as number, 1, 1, mask.shape[2] as number, lk])).reshape([b, hkv, g * n, lk]);
      return tf.matMul(tf.softmax(logits, -1), vv).reshape([b, h, n, dh]) as tf.Tensor4D;
    };
    if (chunk >= lq) return attend(q, opts.mask);
    const outs: tf.Tensor4D[] = [];
    for (let s = 0; s < lq; s += chunk) {
      const n = Math.min(chunk, lq - s);
      const qc = q.slice([0, 0, s, 0], [b, h, n, q.shape[3]]);
      let mc = opts.mask ?? null;
      if (mc && mc.shape[2] === lq && lq > 1) mc = mc.slice([0, 0, s, 0], [mc.shape[0] as number, mc.shape[1] as number, n, mc.shape[3] as number]);
      // each chunk in its own tidy: its scores are freed before the next chunk's are made
      outs.push(tf.tidy(() => attend(qc, mc)));
    }
    return tf.concat(outs, 2) as tf.Tensor4D;
  });
}

/**
 * One query position per row, grouped: softmax(q k^T * scale + mask) v with q [B, Hkv, g, D] (the g
 * query heads sharing each kv head), k/v [B, Hkv, Lk, D], mask additive [B, 1, 1, Lk] -> [B, Hkv, g, D].
 * The same products as scaledDotProductAttention's grouped path at Lq = 1, without its reshapes
 * (the cached decode step is per-op bound on the native backend).
 */
export function groupedDecodeAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor | null, scale = 1 / Math.sqrt(q.shape[3])): tf.Tensor4D {
  return tf.tidy(() => {
    let logits = tf.mul(tf.matMul(q, k, false, true), scale); // [B, Hkv, g, Lk]
    if (mask) logits = tf.add(logits, mask);
    return tf.matMul(tf.softmax(logits, -1), v) as tf.Tensor4D;
  });
}

/** the largest score tensor (elements) attention materialises at once */
export const ATTENTION_CHUNK_ELEMENTS = 1 << 23;

/**
 * Additive causal mask [1, 1, Lq, Lk] for queries at positions offset..offset+Lq-1 over keys
 * 0..Lk-1, optionally combined with a key padding mask [B, Lk] (1 = keep, 0 = pad) -> [B, 1, Lq, Lk].
 */
export function causalMask(lq: number, lk: number, offset = 0, keyMask?: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const m = new Float32Array(lq * lk);
    for (let i = 0; i < lq; i++) for (let j = 0; j < lk; j++) if (j > i + offset) m[i * lk + j] = MASK_VALUE;
    let mask = tf.tensor4d(m, [1, 1, lq, lk]);
    if (keyMask) {
      const pad = tf.mul(tf.sub(1, keyMask.cast('float32')), MASK_VALUE).reshape([keyMask.shape[0], 1, 1, lk]);
      mask = tf.maximum(tf.add(mask, pad), MASK_VALUE) as tf.Tensor4D;
    }
    return mask;
  });
}

/** Per-layer key/value cache for incremental decoding; owns its tensors. */
export class KVCache {
  private readonly k: (tf.Tensor4D | null)[];
  private readonly v: (tf.Tensor4D | null)[];

  constructor(layers: number) {
    this.k = new Array(layers).fill(null);
    this.v = new Array(layers).fill(null);
  }

  /** number of cached positions */
  get length(): number {
    return this.k[0]?.shape[2] ?? 0;
  }

  /** Append new keys/values [B, Hkv, L, D] for `layer`; returns the full cached k, v (owned by the cache). */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    const pk = this.k[layer];
    const pv = this.v[layer];
    const nk = pk ? (tf.concat([pk, k], 2) as tf.Tensor4D) : tf.keep(k.clone());
    const nv = pv ? (tf.concat([pv, v], 2) as tf.Tensor4D) : tf.keep(v.clone());
    tf.keep(nk);
    tf.keep(nv);
    pk?.dispose();
    pv?.dispose();
    this.k[layer] = nk;
    this.v[layer] = nv;
    return [nk, nv];
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null);
    this.v.fill(null);
  }
}

export interface AttentionOptions {
  heads: number;
  /** key/value heads (GQA); default = heads */
  kvHeads?: number;
  /** internal dim (SAM2's downsampled attention); default = dim */
  innerDim?: number;
  /** dims of the key/value inputs when they differ from dim */
  kvDim?: number;
  bias?: boolean;
  /** names of the projections in the checkpoint */
  names?: { q: string; k: string; v: string; o: string };
}

/** Multi-head attention with separate q/k/v/o projections (SAM2 two-way transformer, HF CLIP, Qwen2 decoder). */
export class MultiHeadAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;

  constructor(parent: Module | null, prefix: string, dim: number, opts: AttentionOptions) {
    super(parent, prefix);
    const names = opts.names ?? { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'out_proj' };
    const inner = opts.innerDim ?? dim;
    this.heads = opts.heads;
    this.kvHeads = opts.kvHeads ?? opts.heads;
    if (inner % this.heads) throw new Error(`${this.prefix}: inner dim ${inner} not divisible by ${this.heads} heads`);
    this.headDim = inner / this.heads;
    const kvDim = opts.kvDim ?? dim;
    this.q = new Linear(this, names.q, dim, inner, { bias: opts.bias });
    this.k = new Linear(this, names.k, kvDim, this.headDim * this.kvHeads, { bias: opts.bias });
    this.v = new Linear(this, names.v, kvDim, this.headDim * this.kvHeads, { bias: opts.bias });
    this.o = new Linear(this, names.o, inner, dim, { bias: opts.bias });
  }

  /** [B, L, H*D] -> [B, H, L, D] */
  splitHeads(x: tf.Tensor, heads: number): tf.Tensor4D {
    const [b, l] = x.shape;
    return tf.transpose(x.reshape([b, l, heads, this.headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
  }

  /** [B, H, L, D] -> [B, L, H*D] */
  mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
    const [b, h, l, d] = x.shape;
    return tf.transpose(x, [0, 2, 1, 3]).reshape([b, l, h * d]) as tf.Tensor3D;
  }

  /** q [B, Lq, dim], k/v [B, Lk, kvDim] -> [B, Lq, dim] */
  forward(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, opts: { mask?: tf.Tensor | null } = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const qh = this.splitHeads(this.q.forward(q), this.heads);
      const kh = this.splitHeads(this.k.forward(k), this.kvHeads);
      const vh = this.splitHeads(this.v.forward(v), this.kvHeads);
      const out = scaledDotProductAttention(qh, kh, vh, { mask: opts.mask });
      return this.o.forward(this.mergeHeads(out)) as tf.Tensor3D;
    });
  }
}
