/**
 * The one place that chooses the tfjs backend.
 *
 * DPAD_BACKEND = auto | tensorflow | wasm | cpu (default auto)
 *   auto       the native TensorFlow backend when it loads (the GPU build on a machine with an NVIDIA
 *              device, else the CPU build; both from `npm run setup:native`, or a tfjs-node in
 *              node_modules), unless the caller passes a workload for which wasm is measured
 *              faster (wasmFasterFor); else wasm
 *   tensorflow the native backend only (an error naming why it did not load)
 *   wasm       the WebAssembly backend, with every kernel it lacks bridged to the JS cpu kernels
 *   cpu        the pure-JS backend (slow; reference and debugging)
 *
 * Native (TF 2.21 CPU, oneDNN, both cores) runs matmul at 3-7x wasm, CLIP 2.4-5x and SAM2 4.5-6x faster
 * (BENCHMARKS.md); wasm is single-threaded with a 4 GiB heap. The wasm-only machinery (kernel bridging,
 * the BatchMatMul/Conv2DBackpropFilter/UnsortedSegmentSum replacements under src/backend/wasm/) is
 * registered only when wasm is chosen; the native path runs TensorFlow's own kernels.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every gradient (tfjs-core alone registers none); the registries are global.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { bridgeMissingKernels, replaceFaultyKernels } from './backend/wasm/bridge.ts';
import { registerFastSegmentSum } from './backend/wasm/segment-sum.ts';
import { registerPlainBatchMatMul } from './backend/wasm/batch-matmul.ts';
import { registerFastConvFilterGrad } from './backend/wasm/conv-filter-grad.ts';
import { nativeCandidates, type NativeManifest, type NativeVariant } from './backend/native.ts';

export { bridgeMissingKernels, replaceFaultyKernels, FAULTY_WASM_KERNELS } from './backend/wasm/bridge.ts';
export { registerFastSegmentSum } from './backend/wasm/segment-sum.ts';
export { registerPlainBatchMatMul } from './backend/wasm/batch-matmul.ts';
export { registerFastConvFilterGrad } from './backend/wasm/conv-filter-grad.ts';

/** The built-in choices, or the `choice` of a registered BackendProvider. */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu' | (string & {});

/**
 * A backend beyond the built-in ones (e.g. WebGPU): one file that registers it. DPAD_BACKEND=<choice>
 * (or initBackend({ choice })) then selects it.
 */
export interface BackendProvider {
  /** the DPAD_BACKEND value that picks it */
  choice: string;
  /** the tfjs backend name it makes available */
  tfBackend: string;
  /** for the startup line and errors, e.g. '@tensorflow/tfjs-backend-webgpu' */
  describe: string;
  /** make the tfjs backend available (import its package, register kernels); false: not available here */
  prepare(): Promise<boolean> | boolean;
}

const PROVIDERS = new Map<string, BackendProvider>();

/** Register a backend provider; its choice must not be a built-in one or taken. */
export function registerBackendProvider(p: BackendProvider): void {
  if (['auto', 'tensorflow', 'wasm', 'cpu'].includes(p.choice) || PROVIDERS.has(p.choice)) throw new Error(`backend: the choice '${p.choice}' is already taken`);
  PROVIDERS.set(p.choice, p);
}

/** What the process (or one phase of it) runs, for DPAD_BACKEND=auto and backendForPhase. */
export interface Workload {
  /** parameters of the largest model it runs */
  parameters: number;
  /** decode: cached token-by-token generation; train: forward+backward; encode: one big forward
   *  (CLIP, SAM2, prefill); mixed (default): a bit of everything, e.g. a small model's GRPO step */
  phase?: 'decode' | 'train' | 'encode' | 'mixed';
  /** sequences decoded together (decode only; default 1) */
  batch?: number;
}

/**
 * Measured crossovers, native TensorFlow CPU (2 threads) against wasm (1 thread), on the 2-core
 * machine (BENCHMARKS.md, "Backend crossover", `npm run bench -- crossover`):
 * - forward+backward: native is faster at every size measured (1.8x at 0.48M parameters, 6x at 55M);
 * - a cached decode step at batch 16: wasm is faster up to ~1.3M parameters, native from ~4M;
 * - a cached decode step at batch 1 is per-op bound on native (~1600 ops of ~30 us per token for a
 *   24-layer decoder): wasm was faster at every size that fits its heap (0.5M-387M; 151 vs 192 ms
 *   per token for the 0.5B-shaped decoder).
 */
export const NATIVE_CROSSOVER_PARAMETERS = 4e6;
/** The largest decoder measured faster on wasm at batch 1 (and about the largest whose LM head wasm computes correctly). */
export const WASM_BATCH1_DECODE_MAX_PARAMETERS = 400e6;

/** Whether the measurements say wasm beats native CPU for this workload. */
export function wasmFasterFor(w: Workload): boolean {
  const phase = w.phase ?? 'mixed';
  if (phase === 'train' || phase === 'encode') return false;
  if (phase === 'decode' && (w.batch ?? 1) <= 1) return w.parameters <= WASM_BATCH1_DECODE_MAX_PARAMETERS;
  return w.parameters < NATIVE_CROSSOVER_PARAMETERS;
}

export interface NativeDetails {
  variant: NativeVariant;
  /** TensorFlow version the loaded library reports */
  tfVersion: string;
  /** where the package was loaded from */
  source: string;
  manifest: NativeManifest | null;
}

export interface BackendInfo {
  /** tfjs backend name actually running: 'tensorflow' | 'wasm' | 'cpu' */
  name: string;
  /** which package provides it */
  provider: string;
  /** kernels bridged from cpu into wasm (empty on other backends) */
  bridged: string[];
  tfjsVersion: string;
  /** the native build, when name is 'tensorflow' */
  native: NativeDetails | null;
  /** why this backend (auto's reasoning, or the explicit choice) */
  reason: string;
}

let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;

export function parseChoice(value: string | undefined): BackendChoice {
  const v = (value ?? 'auto').trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'tensorflow' || v === 'wasm' || v === 'cpu' || PROVIDERS.has(v)) return v;
  throw new Error(`DPAD_BACKEND=${value}: expected one of ${['auto', 'tensorflow', 'wasm', 'cpu', ...PROVIDERS.keys()].join(', ')}`);
}

/** An NVIDIA device node or driver is present (the GPU build is only tried then). */
export function hasNvidiaGpu(): boolean {
  return fs.existsSync('/dev/nvidia0') || fs.existsSync('/proc/driver/nvidia/version');
}

let nativeLoad: Promise<{ details: NativeDetails | null; errors: string[] }> | null = null;

/**
 * Load the native backend once: the setup:native builds first (GPU only with a GPU), then a
 * tfjs-node(-gpu) in node_modules. Errors of builds that exist but fail to load are kept for the
 * DPAD_BACKEND=tensorflow message; an absent package is not an error.
 */
export function loadNative(): Promise<{ details: NativeDetails | null; errors: string[] }> {
  nativeLoad ??= (async () => {
    // TensorFlow's C++ INFO/WARNING lines (oneDNN, cpu_feature_guard) go to stderr unless told
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    const errors: string[] = [];
    const gpu = hasNvidiaGpu();
    for (const c of nativeCandidates()) {
      if (c.variant === 'gpu' && !gpu) continue;
      const isFile = c.entry.startsWith('/');
      try {
        await import(isFile ? pathToFileURL(c.entry).href : c.entry);
        if (!tf.findBackend('tensorflow')) throw new Error('it loaded but registered no tensorflow backend');
        // a tfjs-node from npm carries its own libtensorflow (2.9.1 for 4.22), a build its manifest
        const v = c.manifest?.tfVersion ?? 'of the npm package';
        return { details: { variant: c.variant, tfVersion: v, source: c.entry, manifest: c.manifest }, errors };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (!isFile && code === 'ERR_MODULE_NOT_FOUND') continue;
        errors.push(`${c.entry}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    return { details: null, errors };
  })();
  return nativeLoad;
}

let wasmBridged: string[] | null = null;
function enableWasmMachinery(): string[] {
  if (wasmBridged) return wasmBridged;
  wasmBridged = [...bridgeMissingKernels(), ...replaceFaultyKernels()];
  registerFastSegmentSum('wasm');
  registerPlainBatchMatMul();
  registerFastConvFilterGrad();
  return wasmBridged;
}

/**
 * The backend to run one phase on, from the measured crossovers (wasmFasterFor): on a process whose
 * backend is native CPU, e.g. the rollout of a small policy goes to wasm while its backward pass stays
 * native. On wasm, cpu or GPU processes: the process's backend.
 */
export function backendForPhase(w: Workload): string {
  const name = current?.name ?? tf.getBackend();
  if (name !== 'tensorflow' || current?.native?.variant === 'gpu') return name;
  return wasmFasterFor(w) ? 'wasm' : name;
}

/**
 * Run `fn` with `name` as the active backend, then switch back. Tensors move lazily: a weight of
 * the other backend is copied over the first time a kernel here reads it (and back afterwards), so
 * this pays for small models only (the demo policy's 1.16M parameters: ~5 MB each way).
 */
export async function onBackend<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  const before = tf.getBackend();
  if (name === before) return fn();
  if (name === 'wasm') enableWasmMachinery();
  if (!(await tf.setBackend(name))) throw new Error(`backend: tf.setBackend('${name}') failed`);
  try {
    return await fn();
  } finally {
    await tf.setBackend(before);
  }
}

async function select(choice: BackendChoice, workload: Workload | undefined): Promise<BackendInfo> {
  // The "install tfjs-node" banner and other notices are for browsers users; we print our own line.
  tf.env().set('PROD', true);
  let native: NativeDetails | null = null;
  let reason = `DPAD_BACKEND=${choice}`;
  const extra = PROVIDERS.get(choice);
  if (extra) {
    if (!(await extra.prepare())) throw new Error(`DPAD_BACKEND=${choice}: ${extra.describe} is not available here`);
    if (!(await tf.setBackend(extra.tfBackend))) throw new Error(`backend: tf.setBackend('${extra.tfBackend}') failed for ${extra.describe}`);
    await tf.ready();
    return { name: extra.tfBackend, provider: extra.describe, bridged: [], tfjsVersion: tf.version_core, native: null, reason };
  }
  if (choice === 'auto' || choice === 'tensorflow') {
    if (choice === 'auto' && workload && !hasNvidiaGpu() && wasmFasterFor(workload)) {
      reason = `auto: wasm is measured faster for a ${workload.phase ?? 'mixed'} workload of ${(workload.parameters / 1e6).toFixed(2)}M parameters${workload.batch ? ` at batch ${workload.batch}` : ''} (BENCHMARKS.md, Backend crossover)`;
    } else {
      const { details, errors } = await loadNative();
      native = details;
      if (native) reason = choice === 'auto' ? 'auto: the native backend loaded' : reason;
      else if (choice === 'tensorflow') {
        throw new Error(`DPAD_BACKEND=tensorflow: no native TensorFlow backend could be loaded (${errors.length ? errors.join('; ') : 'none is built: run npm run setup:native'})`);
      } else reason = `auto: no native backend (${errors.length ? errors.join('; ') : 'run npm run setup:native for it'})`;
    }
  }
  const name = native ? 'tensorflow' : choice === 'cpu' ? 'cpu' : 'wasm';
  let provider = '';
  let bridged: string[] = [];
  if (native) {
    provider = `@tensorflow/tfjs-node${native.variant === 'gpu' ? '-gpu (CUDA)' : ' (native CPU)'}, TensorFlow ${native.tfVersion}`;
  } else if (name === 'wasm') {
    provider = '@tensorflow/tfjs-backend-wasm (SIMD)';
    bridged = enableWasmMachinery();
  } else {
    registerFastSegmentSum('cpu');
    provider = '@tensorflow/tfjs-backend-cpu (pure JS)';
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend: tf.setBackend('${name}') failed`);
  await tf.ready();
  return { name, provider, bridged, tfjsVersion: tf.version_core, native, reason };
}

/**
 * Select the backend once per process (idempotent) and print which one runs, unless
 * DPAD_QUIET is set or `quiet` is passed.
 */
export async function initBackend(opts: { choice?: BackendChoice; quiet?: boolean; workload?: Workload } = {}): Promise<BackendInfo> {
  if (current) return current;
  if (!pending) {
    const choice = parseChoice(opts.choice ?? process.env.DPAD_BACKEND);
    pending = select(choice, opts.workload).then(info => {
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

/** Intra-/inter-op threads of the native backend: TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS, else TF's default (the schedulable cores). */
export function nativeThreads(): { intra: number; inter: number; source: string } {
  const cores = os.availableParallelism();
  const env = (k: string) => (Number(process.env[k]) > 0 ? Number(process.env[k]) : null);
  const intra = env('TF_NUM_INTRAOP_THREADS');
  const inter = env('TF_NUM_INTEROP_THREADS');
  return { intra: intra ?? cores, inter: inter ?? cores, source: intra || inter ? 'TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS' : `TensorFlow's default: ${cores} schedulable cores` };
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
