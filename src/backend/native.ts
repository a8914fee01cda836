/**
 * Where `npm run setup:native` puts the native TensorFlow backend, and how the backend finds it.
 *
 * Layout (all under the git-ignored project folder `.native/`, or $DPAD_NATIVE_DIR):
 *   .native/wheel/                 the TensorFlow wheel(s) pip downloaded (kept: a re-run reuses them)
 *   .native/node_modules/          the JS dependencies of the binding package (never @tensorflow/tfjs:
 *                                  that resolves to the project's own copy, one tfjs-core in the process)
 *   .native/<variant>/<package>/   the built package: tfjs-node 4.22.0 sources, deps/include, deps/lib
 *                                  (libtensorflow from the wheel), lib/napi-v8/tfjs_binding.node
 *   .native/<variant>/manifest.json what was built (NativeManifest)
 * variant = cpu (package tfjs-node, wheel tensorflow-cpu) | gpu (package tfjs-node-gpu, wheel tensorflow
 * plus the CUDA 12 nvidia-* wheels under .native/gpu/<package>/deps/nvidia).
 *
 * The backend imports the package by file path, so nothing lives in node_modules/: `npm ci` wipes
 * node_modules/ and leaves .native/ alone, and the built backend keeps working after it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type NativeVariant = 'cpu' | 'gpu';

export interface NativeManifest {
  variant: NativeVariant;
  /** '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu' */
  package: string;
  packageVersion: string;
  /** TensorFlow version the library reports (TF_Version()) */
  tfVersion: string;
  /** the wheel the library came from (null when --libtensorflow gave a directory) */
  wheel: { file: string; sha256: string } | null;
  libtensorflowDir: string | null;
  /** extra wheels (the CUDA libraries of the GPU build) */
  extraWheels: { file: string; sha256: string }[];
  /** the binding, relative to the package directory */
  binding: string;
  /** directories the GPU build needs on the library path (also written to .native/gpu/env.sh) */
  libraryPath: string[];
  node: string;
  napiVersion: number;
  compiler: string;
  builtAt: string;
  buildSeconds: number;
}

export const PACKAGE_OF: Record<NativeVariant, string> = {
  cpu: '@tensorflow/tfjs-node',
  gpu: '@tensorflow/tfjs-node-gpu',
};

/** The project root (two levels above this file). */
export function projectRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export function nativeDir(): string {
  return process.env.DPAD_NATIVE_DIR ? path.resolve(process.env.DPAD_NATIVE_DIR) : path.join(projectRoot(), '.native');
}

/** Directory of the built package of `variant`, e.g. .native/cpu/tfjs-node */
export function packageDir(variant: NativeVariant, root = nativeDir()): string {
  return path.join(root, variant, PACKAGE_OF[variant].split('/')[1]);
}

export function manifestPath(variant: NativeVariant, root = nativeDir()): string {
  return path.join(root, variant, 'manifest.json');
}

/** The manifest of a finished build of `variant`, or null (absent or unreadable). */
export function readManifest(variant: NativeVariant, root = nativeDir()): NativeManifest | null {
  try {
    const m = JSON.parse(fs.readFileSync(manifestPath(variant, root), 'utf8')) as NativeManifest;
    return m.variant === variant ? m : null;
  } catch {
    return null;
  }
}

export interface NativeCandidate {
  variant: NativeVariant;
  /** what to import(): an absolute file path of the package's entry, or a bare package name */
  entry: string;
  manifest: NativeManifest | null;
}

/**
 * What the backend tries, best first: the GPU build, the CPU build (both from setup:native), then a
 * tfjs-node a user installed into node_modules themselves.
 */
export function nativeCandidates(root = nativeDir()): NativeCandidate[] {
  const out: NativeCandidate[] = [];
  for (const variant of ['gpu', 'cpu'] as const) {
    const manifest = readManifest(variant, root);
    const entry = path.join(packageDir(variant, root), 'dist', 'index.js');
    if (manifest && fs.existsSync(entry)) out.push({ variant, entry, manifest });
  }
  out.push({ variant: 'gpu', entry: PACKAGE_OF.gpu, manifest: null });
  out.push({ variant: 'cpu', entry: PACKAGE_OF.cpu, manifest: null });
  return out;
}
