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
 * wasm without avoiding any op.
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
  const cpu = tf.findBackend('cpu');
  if (!cpu) throw new Error('backend: the cpu backend is not registered');
  const bridged: string[] = [];
  for (const cfg of tf.getKernelsForBackend('cpu')) {
    if (wasmNames.has(cfg.kernelName)) continue;
    const cpuKernel = cfg.kernelFunc;
    tf.registerKernel({
      kernelName: cfg.kernelName,
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
    bridged.push(cfg.kernelName);
  }
  return bridged;
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
 * wasm's BatchMatMul is ~10x slower with a transposed operand than without; autograd asks for
 * transposed products in every matmul gradient. This wrapper materialises the transposes with
 * wasm's Transpose kernel and runs the plain product.
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
      if (!at.transposeA && !at.transposeB) return orig.kernelFunc({ inputs, attrs, backend });
      const be = backend as unknown as { disposeData(id: tf.DataId): void };
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
      const out = orig.kernelFunc({ inputs: { a: aa, b: bb }, attrs: { ...attrs, transposeA: false, transposeB: false } as unknown as tf.NamedAttrMap, backend });
      for (const x of temps) be.disposeData(x.dataId);
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
    bridged = bridgeMissingKernels();
    registerFastSegmentSum('wasm');
    registerPlainBatchMatMul();
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
