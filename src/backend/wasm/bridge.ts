/** wasm: kernels it lacks (or computes wrongly) run as the cpu backend's kernel on copies of the inputs. */
import * as tf from '@tensorflow/tfjs-core';

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

export interface WasmLike {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

function copyValues(v: tf.backend_util.BackendValues): tf.backend_util.BackendValues {
  if (Array.isArray(v)) return v.slice();
  return (v as Float32Array).slice();
}
