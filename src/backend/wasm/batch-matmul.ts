/** BatchMatMul for wasm without its two slow paths (transposed operands, batch > 1). */
import * as tf from '@tensorflow/tfjs-core';
import type { WasmLike } from './bridge.ts';
import { assertMatMulFits } from './heap-guard.ts';

/**
 * Two wasm BatchMatMul slow paths, worked around here:
 * - a transposed operand is ~10x slower than a plain one, and autograd asks for transposed
 *   products in every matmul gradient: the transposes are materialised with wasm's Transpose;
 * - a product with batch > 1 is 20-40x slower than the same products one batch element at a time
 *   (measured: [4,1024,96] x [4,96,1024] 2.35 s, four [1,1024,96] x [1,96,1024] 14 ms each;
 *   BENCHMARKS.md): batched products run as batch-1 products on copies of each slice, written into
 *   one output. Batch dims must be equal or one side's all ones (anything else goes to the kernel).
 */
export function registerPlainBatchMatMul(): void {
  const orig = tf.getKernel('BatchMatMul', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!orig || !transpose) return;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    setupFunc: orig.setupFunc,
    disposeFunc: orig.disposeFunc,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const at = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const be = backend as unknown as WasmLike & { disposeData(id: tf.DataId): void };
      const temps: tf.TensorInfo[] = [];
      const t = (x: tf.TensorInfo): tf.TensorInfo => {
        const r = x.shape.length;
        const perm = Array.from({ length: r }, (_, i) => i);
        [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
        const y = transpose.kernelFunc({ inputs: { x }, attrs: { perm }, backend }) as tf.TensorInfo;
        temps.push(y);
        return y;
      };
      const aa = at.transposeA ? t(a) : a;
      const bb = at.transposeB ? t(b) : b;
      const plain = { transposeA: false, transposeB: false } as unknown as tf.NamedAttrMap;
      const done = (out: tf.TensorInfo | tf.TensorInfo[]) => {
        for (const x of temps) be.disposeData(x.dataId);
        return out;
      };
      const ra = aa.shape.length;
      const rb = bb.shape.length;
      const [M, K] = aa.shape.slice(-2);
      const N = bb.shape[rb - 1];
      const batchDimsA = aa.shape.slice(0, -2);
      const batchDimsB = bb.shape.slice(0, -2);
      // numpy broadcasting of the batch dims (tfjs 4.22's own cpu and wasm kernels flatten them and
      // index modulo the smaller batch, which is wrong for e.g. [2,1] against [2,3])
      const rank = Math.max(batchDimsA.length, batchDimsB.length);
      const padA = [...Array(rank - batchDimsA.length).fill(1), ...batchDimsA];
      const padB = [...Array(rank - batchDimsB.length).fill(1), ...batchDimsB];
      const broadcastable = padA.every((d, k) => d === padB[k] || d === 1 || padB[k] === 1);
      const outDims = padA.map((d, k) => Math.max(d, padB[k]));
      const batch = outDims.reduce((x, y) => x * y, 1);
      const splittable = batch > 1 && broadcastable && aa.dtype === 'float32' && bb.dtype === 'float32' && ra >= 2 && rb >= 2;
      try {
        // the kernel caches the packing of a right operand it is given directly (not of our copies)
        assertMatMulFits(backend, aa.shape, bb.shape, !splittable && bb === b ? (b.dataId as object) : undefined);
      } catch (e) {
        done([]);
        throw e;
      }
      if (!splittable) return done(orig.kernelFunc({ inputs: { a: aa, b: bb }, attrs: plain, backend }));
      // flat batch index of an operand for each output batch index (stride 0 along broadcast dims)
      const strides = (dims: number[]) => {
        const st = Array(rank).fill(0);
        let acc = 1;
        for (let k = rank - 1; k >= 0; k--) { st[k] = dims[k] === 1 ? 0 : acc; acc *= dims[k]; }
        return st;
      };
      const sa = strides(padA);
      const sb = strides(padB);
      const index = (i: number, st: number[]) => {
        let r = 0;
        for (let k = rank - 1; k >= 0; k--) { r += (i % outDims[k]) * st[k]; i = Math.floor(i / outDims[k]); }
        return r;
      };
      // copies: making outputs may grow the wasm heap and move views
      const av = (be.readSync(aa.dataId) as Float32Array).slice();
      const bv = (be.readSync(bb.dataId) as Float32Array).slice();
      const out = new Float32Array(batch * M * N);
      for (let i = 0; i < batch; i++) {
        const ia = index(i, sa);
        const ib = index(i, sb);
        const x = be.makeOutput([1, M, K], 'float32', undefined, av.subarray(ia * M * K, (ia + 1) * M * K));
        const y = be.makeOutput([1, K, N], 'float32', undefined, bv.subarray(ib * K * N, (ib + 1) * K * N));
        const z = orig.kernelFunc({ inputs: { a: x, b: y }, attrs: plain, backend }) as tf.TensorInfo;
        out.set(be.readSync(z.dataId) as Float32Array, i * M * N);
        for (const u of [x, y, z]) be.disposeData(u.dataId);
      }
      const shape = [...outDims, M, N];
      return done(be.makeOutput(shape, 'float32', undefined, out));
    },
  });
}
