/**
 * A checkpoint layout: every tensor of a released checkpoint, in its state-dict order, with its
 * stored dtype, shape and how its stand-in values are drawn. Writers turn a layout into files,
 * producing each tensor's bytes only when it is written.
 */
import { DTYPE_BYTES, numel, type StorageDtype } from '../io/dtypes.ts';
import { tensorBytes, type Init } from './random.ts';

export interface TensorPlan {
  key: string;
  dtype: StorageDtype;
  shape: number[];
  init: Init;
}

export function planBytes(p: TensorPlan): number {
  return numel(p.shape) * DTYPE_BYTES[p.dtype];
}

export function totalBytes(plans: readonly TensorPlan[]): number {
  return plans.reduce((a, p) => a + planBytes(p), 0);
}

/** The entry writeSafetensors / writeTorchCheckpoint take: bytes made on demand. */
export function lazyTensor(p: TensorPlan, seed: number): { dtype: StorageDtype; shape: number[]; bytes: () => Uint8Array } {
  return { dtype: p.dtype, shape: p.shape.slice(), bytes: () => tensorBytes(p.key, p.dtype, p.shape, p.init, seed) };
}

/**
 * Hugging Face's sharding (save_pretrained's max_shard_size): tensors in state-dict order; a
 * tensor that would take the current shard past `maxBytes` starts the next shard (a tensor larger
 * than the limit gets a shard of its own). Returns the keys of each shard.
 */
export function planShards(plans: readonly TensorPlan[], maxBytes: number): TensorPlan[][] {
  const shards: TensorPlan[][] = [];
  let cur: TensorPlan[] = [];
  let size = 0;
  for (const p of plans) {
    const b = planBytes(p);
    if (cur.length && size + b > maxBytes) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(p);
    size += b;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

/** "4GB" / "500MB" / "2GiB" / a byte count -> bytes (HF's convert_file_size_to_int: GB = 10^9, GiB = 2^30). */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i.exec(s);
  if (!m) throw new Error(`size ${JSON.stringify(s)}: expected a number of bytes or e.g. 4GB, 500MB, 2GiB`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  return Math.round(Number(m[1]) * mult[unit]);
}
