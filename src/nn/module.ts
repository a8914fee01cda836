/**
 * The module base every model uses: parameters with dotted names that follow the official
 * checkpoint, loading through an explicit key mapping with strict checks, trainable flags,
 * and disposal.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorSource } from '../io/source.ts';
import { toTensor } from '../io/source.ts';

export type Init = 'zeros' | 'ones' | { normal: number } | { uniform: number } | ((shape: number[]) => tf.Tensor);

/** Raised by strict loading: every missing, unexpected and mis-shaped key at once. */
export class LoadError extends Error {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly mismatched: { key: string; param: string; expected: number[]; got: number[] }[];
  constructor(where: string, missing: string[], unexpected: string[], mismatched: LoadError['mismatched']) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${missing.length} (${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''})`);
    if (unexpected.length) parts.push(`unexpected ${unexpected.length} (${unexpected.slice(0, 20).join(', ')}${unexpected.length > 20 ? ', ...' : ''})`);
    if (mismatched.length) {
      parts.push(`shape mismatch ${mismatched.length} (${mismatched.slice(0, 20).map(m => `${m.key}: expected [${m.expected}], got [${m.got}]`).join('; ')})`);
    }
    super(`${where}: weights do not fit the model: ${parts.join('; ')}`);
    this.name = 'LoadError';
    this.missing = missing;
    this.unexpected = unexpected;
    this.mismatched = mismatched;
  }
}

/**
 * How checkpoint keys become parameter names: a table (checkpoint key -> param name), a
 * function returning the param name or null to skip the key, or nothing (identity).
 */
export type WeightMap = Record<string, string> | ((key: string) => string | null) | undefined;

export interface LoadOptions {
  map?: WeightMap;
  /** default true: missing, unexpected or mis-shaped keys throw one LoadError */
  strict?: boolean;
  /** checkpoint keys that are knowingly unused (e.g. SAM2 memory modules for the image path) */
  ignore?: (key: string) => boolean;
  /** reshape/transpose a checkpoint tensor into the parameter's layout; owns and may dispose `t` */
  transform?: (param: string, t: tf.Tensor) => tf.Tensor;
  /**
   * the shape `transform` gives for a stored shape. With it (or without a transform), every shape
   * is checked from the source's metadata before anything is read, and tensors are then read and
   * assigned one at a time: the peak is the model plus one tensor, not twice the model.
   */
  transformShape?: (param: string, shape: number[]) => number[];
  /** name of the source, for errors */
  where?: string;
}

export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  ignored: string[];
}

function initTensor(init: Init, shape: number[], seed?: number): tf.Tensor {
  if (init === 'zeros') return tf.zeros(shape);
  if (init === 'ones') return tf.ones(shape);
  if (typeof init === 'function') return init(shape);
  if ('normal' in init) return tf.randomNormal(shape, 0, init.normal, 'float32', seed);
  return tf.randomUniform(shape, -init.uniform, init.uniform, 'float32', seed);
}

export class Module {
  /** the dotted path of this module in the root model ('' for the root) */
  readonly prefix: string;
  readonly parent: Module | null;
  private readonly ownParams = new Map<string, tf.Variable>();
  /** 2-D parameters held transposed ([in, out] for a checkpoint's [out, in]) */
  private readonly transposedParams = new Set<string>();
  private readonly inits = new Map<string, { init: Init; shape: number[] }>();
  private readonly children: Module[] = [];

  constructor(parent: Module | null, prefix: string) {
    this.parent = parent;
    this.prefix = parent && parent.prefix ? (prefix ? `${parent.prefix}.${prefix}` : parent.prefix) : prefix;
    parent?.children.push(this);
  }

  /**
   * Declare a parameter; `name` is relative to this module ('weight', 'conv1.weight') and `shape`
   * is its checkpoint shape. With `transposed`, a 2-D parameter is held as its transpose (Linear
   * weights as [in, out]: a plain matmul is ~10x faster than a transposed one on wasm); loading
   * and exportTensors convert at the boundary, so checkpoints keep the official layout.
   */
  protected param(name: string, shape: number[], init: Init = 'zeros', opts: { transposed?: boolean } = {}): tf.Variable {
    if (this.ownParams.has(name)) throw new Error(`${this.fullName(name)}: parameter declared twice`);
    if (opts.transposed && shape.length !== 2) throw new Error(`${this.fullName(name)}: only 2-D parameters can be held transposed`);
    const v = tf.tidy(() => {
      const t = initTensor(init, shape);
      return tf.variable(opts.transposed ? tf.transpose(t) : t, true);
    });
    this.ownParams.set(name, v);
    this.inits.set(name, { init, shape });
    if (opts.transposed) this.transposedParams.add(name);
    return v;
  }

  /**
   * Re-draw every parameter from the initialiser it was declared with, deterministically from
   * `seed` (each parameter gets its own stream, in declaration order): a reproducible fresh model.
   */
  initialize(seed: number): this {
    let k = 0;
    const walk = (m: Module) => {
      for (const [n, v] of m.ownParams) {
        const { init, shape } = m.inits.get(n)!;
        const s = seed * 100003 + k++;
        tf.tidy(() => {
          const t = initTensor(init, shape, s);
          v.assign(m.transposedParams.has(n) ? tf.transpose(t) : t);
        });
      }
      for (const c of m.children) walk(c);
    };
    walk(this);
    return this;
  }

  /** Full names of the parameters held transposed. */
  transposedNames(): Set<string> {
    const out = new Set<string>();
    const walk = (m: Module) => {
      for (const n of m.transposedParams) out.add(m.fullName(n));
      for (const c of m.children) walk(c);
    };
    walk(this);
    return out;
  }

  /** Parameters in checkpoint layout (transposed ones turned back); the caller disposes the map's tensors. */
  exportTensors(): Map<string, tf.Tensor> {
    const tr = this.transposedNames();
    return new Map([...this.namedParameters()].map(([n, v]) => [n, tr.has(n) ? tf.transpose(v) : v.clone()]));
  }

  fullName(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  /** Every parameter of this module and its children, by full dotted name. */
  namedParameters(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    const walk = (m: Module) => {
      for (const [n, v] of m.ownParams) out.set(m.fullName(n), v);
      for (const c of m.children) walk(c);
    };
    walk(this);
    return out;
  }

  /** Trainable parameters only. */
  trainableParameters(): Map<string, tf.Variable> {
    return new Map([...this.namedParameters()].filter(([, v]) => v.trainable));
  }

  parameterCount(): number {
    let n = 0;
    for (const v of this.namedParameters().values()) n += v.size;
    return n;
  }

  /**
   * Set the trainable flag of parameters whose full name passes `filter` (default: all).
   * Frozen parameters get no gradients and no optimizer state.
   */
  setTrainable(trainable: boolean, filter: (name: string) => boolean = () => true): this {
    for (const [n, v] of this.namedParameters()) if (filter(n)) v.trainable = trainable;
    return this;
  }

  /**
   * Load parameters from a checkpoint or a name -> tensor map. With `strict` (default),
   * every parameter must be loaded, every checkpoint key used (or ignored), every shape match,
   * and all problems are reported in one LoadError.
   */
  load(source: TensorSource | Map<string, tf.Tensor>, opts: LoadOptions = {}): LoadReport {
    const strict = opts.strict ?? true;
    const where = opts.where ?? ('path' in source && typeof source.path === 'string' ? source.path : 'weights');
    const params = this.namedParameters();
    const transposed = this.transposedNames();
    const keys = source instanceof Map ? [...source.keys()] : source.keys();
    const map = opts.map;
    const resolve = (k: string): string | null => {
      if (map === undefined) return k;
      if (typeof map === 'function') return map(k);
      return Object.prototype.hasOwnProperty.call(map, k) ? map[k] : null;
    };
    const plan: [string, string][] = [];
    const unexpected: string[] = [];
    const ignored: string[] = [];
    const seen = new Set<string>();
    const mismatched: LoadError['mismatched'] = [];
    for (const k of keys) {
      if (opts.ignore?.(k)) { ignored.push(k); continue; }
      const p = resolve(k);
      if (p === null || !params.has(p)) { unexpected.push(k); continue; }
      if (seen.has(p)) { unexpected.push(`${k} (maps onto ${p} a second time)`); continue; }
      seen.add(p);
      plan.push([k, p]);
    }
    const missing = [...params.keys()].filter(p => !seen.has(p));
    const expectedShape = (p: string) => {
      const v = params.get(p)!;
      return transposed.has(p) ? v.shape.slice().reverse() : v.shape.slice();
    };
    // Streaming: shapes known up front (metadata, or a map's tensors) -> check everything, then
    // read and assign tensor by tensor. A failed strict load assigns nothing either way.
    const shapeOf = (k: string): number[] => (source instanceof Map ? source.get(k)!.shape.slice() : source.meta(k).shape.slice());
    if (!opts.transform || opts.transformShape) {
      for (const [k, p] of plan) {
        const stored = shapeOf(k);
        const got = opts.transformShape ? opts.transformShape(p, stored) : stored;
        if (!tf.util.arraysEqual(got, expectedShape(p))) mismatched.push({ key: k, param: p, expected: expectedShape(p), got });
      }
      if (strict && (missing.length || unexpected.length || mismatched.length)) throw new LoadError(where, missing, unexpected, mismatched);
      if (!strict && mismatched.length) throw new LoadError(where, [], [], mismatched);
      for (const [k, p] of plan) {
        const v = params.get(p)!;
        let t = source instanceof Map ? source.get(k)!.clone() : toTensor(source.read(k));
        try {
          if (opts.transform) t = opts.transform(p, t);
          if (t.dtype !== v.dtype) {
            const c = t.cast(v.dtype);
            t.dispose();
            t = c;
          }
          if (!tf.util.arraysEqual(t.shape, expectedShape(p))) {
            throw new LoadError(where, [], [], [{ key: k, param: p, expected: expectedShape(p), got: t.shape.slice() }]);
          }
          if (transposed.has(p)) {
            const tt = tf.transpose(t);
            t.dispose();
            t = tt;
          }
          v.assign(t);
        } finally {
          t.dispose();
        }
      }
      return { loaded: plan.map(([, p]) => p), missing, unexpected, ignored };
    }
    const pending: [tf.Variable, tf.Tensor][] = [];
    try {
      for (const [k, p] of plan) {
        const v = params.get(p)!;
        let t = source instanceof Map ? source.get(k)!.clone() : toTensor(source.read(k));
        if (opts.transform) t = opts.transform(p, t);
        if (t.dtype !== v.dtype) {
          const c = t.cast(v.dtype);
          t.dispose();
          t = c;
        }
        const expected = transposed.has(p) ? v.shape.slice().reverse() : v.shape.slice();
        if (!tf.util.arraysEqual(t.shape, expected)) {
          mismatched.push({ key: k, param: p, expected, got: t.shape.slice() });
          t.dispose();
          continue;
        }
        if (transposed.has(p)) {
          const tt = tf.transpose(t);
          t.dispose();
          t = tt;
        }
        pending.push([v, t]);
      }
      if (strict && (missing.length || unexpected.length || mismatched.length)) {
        throw new LoadError(where, missing, unexpected, mismatched);
      }
      if (!strict && mismatched.length) throw new LoadError(where, [], [], mismatched);
      for (const [v, t] of pending) v.assign(t);
    } finally {
      for (const [, t] of pending) t.dispose();
    }
    return { loaded: plan.map(([, p]) => p).filter(p => !mismatched.some(m => m.param === p)), missing, unexpected, ignored };
  }


  dispose(): void {
    for (const v of this.ownParams.values()) v.dispose();
    this.ownParams.clear();
    for (const c of this.children) c.dispose();
  }
}
