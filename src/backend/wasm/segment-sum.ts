/** UnsortedSegmentSum for wasm and cpu (the gradient of gather). */
import * as tf from '@tensorflow/tfjs-core';
import type { WasmLike } from './bridge.ts';

/**
 * UnsortedSegmentSum in O(N * D): the gradient of gather (embeddings, row scatter). The cpu
 * backend's kernel loops over every segment with a mask (O(segments * N * D)), which made the
 * embedding gradient of a 1k-token vocabulary take seconds; this one accumulates rows directly.
 */
export function registerFastSegmentSum(backendName: 'wasm' | 'cpu'): void {
  const existing = tf.getKernel('UnsortedSegmentSum', backendName);
  if (existing) tf.unregisterKernel('UnsortedSegmentSum', backendName);
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
      const be = backend as unknown as WasmLike & { write?: (v: tf.backend_util.BackendValues, s: number[], d: tf.DataType) => tf.DataId };
      const xv = be.readSync(x.dataId) as Float32Array | Int32Array;
      const ids = be.readSync(segmentIds.dataId) as Int32Array;
      const n = ids.length;
      const inner = n ? xv.length / n : 0;
      const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
      for (let i = 0; i < n; i++) {
        const sgm = ids[i];
        if (sgm < 0 || sgm >= numSegments) continue;
        const o = sgm * inner;
        const src = i * inner;
        for (let k = 0; k < inner; k++) out[o + k] += xv[src + k];
      }
      const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
      if (backendName === 'wasm') return be.makeOutput(shape, x.dtype, undefined, out);
      return { dataId: be.write!(out, shape, x.dtype), shape, dtype: x.dtype };
    },
  });
}
