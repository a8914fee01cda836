/**
 * The one place that chooses the tfjs backend.
 *
 * DPAD_BACKEND = auto | tensorflow | wasm | cpu (default auto)
 *   auto       tfjs-node-gpu (CUDA) if it loads, else tfjs-node (native CPU), else wasm
 *   tensorflow the native bindings only (an error if neither optional package loads)
 *   wasm       the WebAssembly backend, with every kernel it lacks bridged to the JS cpu kernels
 *   cpu        the pure-JS backend (slow; reference and debugging)
 *
 * Measured on the 2-core development machine (BENCHMARKS.md): matmul 1024^2 runs at
 * ~32 GFLOP/s on wasm (SIMD, one thread) against ~0.8 GFLOP/s on cpu, so wasm is the
 * CPU default. wasm registers no kernel for UnsortedSegmentSum (the gradient of gather),
 * Einsum and a few others; `bridgeMissingKernels` registers each of those for wasm by
 * running the cpu backend's own kernel on a copy of the inputs, so training works on
 * wasm without avoiding any op. `replaceFaultyKernels` does the same for the few wasm
 * kernels that exist but compute wrong values (FAULTY_WASM_KERNELS).
 */
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every gradient (tfjs-core alone registers none); the registries are global.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** tfjs backend name actually running: 'tensorflow' | 'wasm' | 'cpu' */
  name: string;
  /** which package provides it */
  provider: string;
  /** kernels bridged from cpu into wasm (empty on other backends) */
  bridged: string[];
  tfjsVersion: string;
}

let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;

function parseChoice(value: string | undefined): BackendChoice {
  const v = (value ?? 'auto').trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'tensorflow' || v === 'wasm' || v === 'cpu') return v;
  throw new Error(`DPAD_BACKEND=${value}: expected one of auto, tensorflow, wasm, cpu`);
}

async function tryNative(pkg: string): Promise<boolean> {
  try {
    // A computed specifier: these are optional dependencies and usually absent.
    await import(pkg);
    return tf.findBackend('tensorflow') !== undefined;
  } catch {
    return false;
  }
}

/**
 * Register, for the wasm backend, every kernel that the cpu backend has and wasm lacks.
 * Each bridged kernel copies its inputs into the cpu backend, runs the cpu kernel there,
 * and copies the outputs back into wasm memory.
 */
export function bridgeMissingKernels(): string[] {
  const wasmNames = new Set(tf.getKernelsForBackend('wasm').map(k => k.kernelName));
  const bridged: string[] = [];
  for (const cfg of tf.getKernelsForBackend('cpu')) {
    if (wasmNames.has(cfg.kernelName)) continue;
    bridgeKernel(cfg.kernelName);
    bridged.push(cfg.kernelName);
  }
  return bridged;
}

/**
 * wasm kernels of tfjs 4.22 that compute wrong values, each replaced by the bridged cpu kernel
 * (test/backend.test.ts checks each against a finite difference):
 *   MaxPoolGrad  right only for batch 1 and one channel: with several channels or images the
 *                gradient lands on the wrong elements, so every max-pooled layer (Hiera's
 *                q-pooling) trained on a wrong gradient.
 */
export const FAULTY_WASM_KERNELS = ['MaxPoolGrad'] as const;

export function replaceFaultyKernels(): string[] {
  for (const name of FAULTY_WASM_KERNELS) bridgeKernel(name);
  return [...FAULTY_WASM_KERNELS];
}

/** Register (or replace) the wasm kernel `kernelName` by the cpu backend's kernel on copies of the inputs. */
function bridgeKernel(kernelName: string): void {
  const cpu = tf.findBackend('cpu');
  if (!cpu) throw new Error('backend: the cpu backend is not registered');
  const cfg = tf.getKernel(kernelName, 'cpu');
  if (!cfg) throw new Error(`backend: the cpu backend has no kernel ${kernelName} to bridge`);
  if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
  const cpuKernel = cfg.kernelFunc;
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const wasm = backend as unknown as WasmLike;
      const made: tf.TensorInfo[] = [];
      const move = (t: tf.TensorInfo): tf.TensorInfo => {
        const values = copyValues(wasm.readSync(t.dataId));
        const info = { dataId: cpu.write(values, t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
        made.push(info);
        return info;
      };
      // most kernels take named inputs; a few (Einsum, Concat-like) take an array
      const cpuInputs: tf.NamedTensorInfoMap | tf.TensorInfo[] = Array.isArray(inputs)
        ? (inputs as tf.TensorInfo[]).map(move)
        : Object.fromEntries(Object.entries(inputs).filter(([, t]) => t != null).map(([k, t]) => [k, move(t as tf.TensorInfo)]));
      const out = cpuKernel({ inputs: cpuInputs as tf.NamedTensorInfoMap, attrs, backend: cpu });
      const outs = Array.isArray(out) ? out : [out];
      const results = outs.map(o => {
        const values = copyValues(cpu.readSync(o.dataId));
        const info = wasm.makeOutput(o.shape, o.dtype, undefined, values);
        if (!made.some(m => m.dataId === o.dataId)) cpu.disposeData(o.dataId);
        return info;
      });
      for (const m of made) cpu.disposeData(m.dataId);
      return Array.isArray(out) ? results : results[0];
    },
  });
}

interface WasmLike {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

function copyValues(v: tf.backend_util.BackendValues): tf.backend_util.BackendValues {
  if (Array.isArray(v)) return v.slice();
  return (v as Float32Array).slice();
}

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
      const batchA = batchDimsA.reduce((x, y) => x * y, 1);
      const batchB = batchDimsB.reduce((x, y) => x * y, 1);
      const batch = Math.max(batchA, batchB);
      const sameDims = (d: number[], e: number[]) => d.length === e.length && d.every((v, i) => v === e[i]);
      const splittable = batch > 1 && aa.dtype === 'float32' && bb.dtype === 'float32' && ra >= 3 && rb >= 3
        && (sameDims(batchDimsA, batchDimsB) || (batchA === 1 && ra === rb) || (batchB === 1 && ra === rb));
      if (!splittable) return done(orig.kernelFunc({ inputs: { a: aa, b: bb }, attrs: plain, backend }));
      // copies: making outputs may grow the wasm heap and move views
      const av = (be.readSync(aa.dataId) as Float32Array).slice();
      const bv = (be.readSync(bb.dataId) as Float32Array).slice();
      const out = new Float32Array(batch * M * N);
      for (let i = 0; i < batch; i++) {
        const ia = batchA === 1 ? 0 : i;
        const ib = batchB === 1 ? 0 : i;
        const x = be.makeOutput([1, M, K], 'float32', undefined, av.subarray(ia * M * K, (ia + 1) * M * K));
        const y = be.makeOutput([1, K, N], 'float32', undefined, bv.subarray(ib * K * N, (ib + 1) * K * N));
        const z = orig.kernelFunc({ inputs: { a: x, b: y }, attrs: plain, backend }) as tf.TensorInfo;
        out.set(be.readSync(z.dataId) as Float32Array, i * M * N);
        for (const u of [x, y, z]) be.disposeData(u.dataId);
      }
      const shape = [...(batchA >= batchB ? batchDimsA : batchDimsB), M, N];
      return done(be.makeOutput(shape, 'float32', undefined, out));
    },
  });
}

/**
 * Conv2DBackpropFilter (the weight gradient of every convolution) for wasm, which lacks it: the
 * bridged cpu kernel loops per output element and took ~1.8 s for SAM2's 7x7 patch embedding at
 * 128 px. Here the input patches are gathered once into [KH*KW*Cin, N*OH*OW] and one wasm
 * BatchMatMul with dy [N*OH*OW, Cout] gives the filter gradient. NHWC only (what tfjs's conv2d
 * gradient asks for); anything else falls through to the bridged kernel.
 */
export function registerFastConvFilterGrad(): void {
  const bridged = tf.getKernel('Conv2DBackpropFilter', 'wasm');
  const matmul = tf.getKernel('BatchMatMul', 'wasm');
  if (!bridged || !matmul) return;
  tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      const a = attrs as unknown as { strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
      if (a.dataFormat !== 'NHWC' || x.dtype !== 'float32') return bridged.kernelFunc({ inputs, attrs, backend });
      const be = backend as unknown as WasmLike & { disposeData(id: tf.DataId): void };
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
      const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
      const top = info.padInfo.top;
      const left = info.padInfo.left;
      const xv = be.readSync(x.dataId) as Float32Array;
      const M = N * OH * OW;
      const K = KH * KW * C;
      const cols = new Float32Array(K * M); // row (kh, kw, c), column (n, oh, ow); zero padding
      for (let kh = 0; kh < KH; kh++) {
        for (let kw = 0; kw < KW; kw++) {
          for (let n = 0; n < N; n++) {
            for (let oh = 0; oh < OH; oh++) {
              const ih = oh * sh + kh - top;
              if (ih < 0 || ih >= H) continue;
              for (let ow = 0; ow < OW; ow++) {
                const iw = ow * sw + kw - left;
                if (iw < 0 || iw >= W) continue;
                const src = ((n * H + ih) * W + iw) * C;
                const col = (n * OH + oh) * OW + ow;
                const row = (kh * KW + kw) * C;
                for (let c = 0; c < C; c++) cols[(row + c) * M + col] = xv[src + c];
              }
            }
          }
        }
      }
      const colsInfo = be.makeOutput([1, K, M], 'float32', undefined, cols);
      const dyInfo = { dataId: dy.dataId, shape: [1, M, CO], dtype: dy.dtype };
      const prod = matmul.kernelFunc({ inputs: { a: colsInfo, b: dyInfo }, attrs: { transposeA: false, transposeB: false }, backend }) as tf.TensorInfo;
      be.disposeData(colsInfo.dataId);
      const out = be.makeOutput(a.filterShape, 'float32', undefined, (be.readSync(prod.dataId) as Float32Array).slice());
      be.disposeData(prod.dataId);
      return out;
    },
  });
}

async function select(choice: BackendChoice): Promise<BackendInfo> {
  // The "install tfjs-node" banner and other notices are for browsers users; we print our own line.
  tf.env().set('PROD', true);
  let provider = '';
  let name = '';
  let bridged: string[] = [];
  if (choice === 'auto' || choice === 'tensorflow') {
    if (await tryNative('@tensorflow/tfjs-node-gpu')) provider = '@tensorflow/tfjs-node-gpu (CUDA)';
    else if (await tryNative('@tensorflow/tfjs-node')) provider = '@tensorflow/tfjs-node (native CPU)';
    if (provider) name = 'tensorflow';
    else if (choice === 'tensorflow') {
      throw new Error('DPAD_BACKEND=tensorflow: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded (install one of them)');
    }
  }
  if (!name) name = choice === 'cpu' ? 'cpu' : 'wasm';
  if (name === 'wasm') {
    provider = '@tensorflow/tfjs-backend-wasm (SIMD)';
    bridged = [...bridgeMissingKernels(), ...replaceFaultyKernels()];
    registerFastSegmentSum('wasm');
    registerPlainBatchMatMul();
    registerFastConvFilterGrad();
  } else if (name === 'cpu') {
    registerFastSegmentSum('cpu');
    provider = '@tensorflow/tfjs-backend-cpu (pure JS)';
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend: tf.setBackend('${name}') failed`);
  await tf.ready();
  return { name, provider, bridged, tfjsVersion: tf.version_core };
}

/**
 * Select the backend once per process (idempotent) and print which one runs, unless
 * DPAD_QUIET is set or `quiet` is passed.
 */
export async function initBackend(opts: { choice?: BackendChoice; quiet?: boolean } = {}): Promise<BackendInfo> {
  if (current) return current;
  if (!pending) {
    const choice = opts.choice ?? parseChoice(process.env.DPAD_BACKEND);
    pending = select(choice).then(info => {
      current = info;
      if (!opts.quiet && !process.env.DPAD_QUIET) {
        process.stderr.write(`[dpad] backend: ${info.name} via ${info.provider}, tfjs ${info.tfjsVersion}\n`);
      }
      return info;
    });
  }
  return pending;
}

/** The backend chosen by initBackend, or null before it ran. */
export function backendInfo(): BackendInfo | null {
  return current;
}

export { tf };

/**
 * Bytes the wasm backend's heap has grown to (it never shrinks, so this is the peak so far), or
 * null on another backend. The wasm heap is capped at 4 GiB; this is the figure that decides
 * whether a large model fits.
 */
export function wasmHeapBytes(): number | null {
  if (tf.getBackend() !== 'wasm') return null;
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
  return heap ? heap.buffer.byteLength : null;
}
