/** The common interface of every checkpoint reader: keys first, tensors on demand. */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor, StorageDtype } from './dtypes.ts';

export interface TensorMeta {
  dtype: StorageDtype;
  shape: number[];
}

export interface TensorSource {
  /** the file (or index) this source reads, for error messages */
  readonly path: string;
  keys(): string[];
  has(key: string): boolean;
  meta(key: string): TensorMeta;
  /** decode one tensor from the file (reads only its bytes) */
  read(key: string): RawTensor;
  close(): void;
}

/** A tfjs tensor of a decoded tensor: floats -> float32, integers and U8 -> int32, BOOL -> bool. */
export function toTensor(raw: RawTensor): tf.Tensor {
  if (raw.dtype === 'BOOL') return tf.tensor(raw.data as Uint8Array, raw.shape, 'bool');
  if (raw.data instanceof Float32Array) return tf.tensor(raw.data, raw.shape, 'float32');
  if (raw.data instanceof Uint8Array) return tf.tensor(Int32Array.from(raw.data), raw.shape, 'int32');
  return tf.tensor(raw.data, raw.shape, 'int32');
}

/** Read every tensor of a source into tfjs tensors (the caller owns and disposes them). */
export function readAll(src: TensorSource, filter?: (key: string) => boolean): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const k of src.keys()) if (!filter || filter(k)) out.set(k, toTensor(src.read(k)));
  return out;
}
