/**
 * Config schemas: each field has a type, a range, a default and a one-line doc. The schema is the
 * one table of defaults (`defaultsOf`), the validator (`validate`: typed, defaulted values, or an
 * error naming the file, the dotted field path and the problem, with a did-you-mean for unknown
 * keys) and the documentation (`describeSchema`).
 *
 *   const S = { steps: { type: 'int', min: 0, nullable: true, default: null, doc: 'updates to run' } } as const satisfies Schema;
 *   validate(S, JSON.parse(text), 'runs/x.json');   // -> { steps: number | null }
 *   // runs/x.json: unknown key 'stpes' (did you mean 'steps'?)
 */
import { didYouMean } from './cli.ts';

interface FieldBase {
  /** one line: what the field does */
  doc: string;
  /** appended to a range error: why the range is what it is */
  note?: string;
}

/** a finite number, optionally bounded (inclusive unless exclusiveMin / exclusiveMax) */
export interface NumberField extends FieldBase {
  type: 'number';
  default: number;
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
}

/** a whole number, optionally bounded (inclusive), optionally null */
export interface IntField extends FieldBase {
  type: 'int';
  default: number | null;
  min?: number;
  max?: number;
  nullable?: boolean;
}

export interface BooleanField extends FieldBase {
  type: 'boolean';
  default: boolean;
}

/** one of a fixed list of strings */
export interface EnumField extends FieldBase {
  type: 'enum';
  values: readonly string[];
  default: string;
}

/** a non-empty string */
export interface StringField extends FieldBase {
  type: 'string';
  default: string;
}

/** a fixed-length list of finite numbers, each in the range */
export interface TupleField extends FieldBase {
  type: 'tuple';
  default: readonly number[];
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
}

/** a list of non-empty strings (optionally each one of `values`), without repeats */
export interface StringsField extends FieldBase {
  type: 'strings';
  default: readonly string[];
  /** the allowed entries (absent: any non-empty string) */
  values?: readonly string[];
  /** at least this many entries (default 0) */
  minLength?: number;
}

/**
 * a nested object with its own fields (unknown keys are refused there too). `nullable: true`: null
 * (the default) switches the section off; an object, even `{}`, switches it on with its fields'
 * defaults.
 */
export interface ObjectField extends FieldBase {
  type: 'object';
  fields: Schema;
  nullable?: boolean;
}

export type Field = NumberField | IntField | BooleanField | EnumField | StringField | TupleField | StringsField | ObjectField;
export type Schema = Readonly<Record<string, Field>>;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The value type a field describes. */
export type InferField<F> = F extends { type: 'number' } ? number
  : F extends { type: 'int'; nullable: true } ? number | null
    : F extends { type: 'int' } ? number
      : F extends { type: 'boolean' } ? boolean
        : F extends { type: 'enum'; values: readonly (infer V)[] } ? V
          : F extends { type: 'string' } ? string
            : F extends { type: 'tuple'; default: infer D extends readonly number[] } ? Mutable<{ [I in keyof D]: number }>
              : F extends { type: 'strings' } ? string[]
                : F extends { type: 'object'; nullable: true; fields: infer S extends Schema } ? Infer<S> | null
                  : F extends { type: 'object'; fields: infer S extends Schema } ? Infer<S>
                    : never;

/** The value type a schema describes. */
export type Infer<S extends Schema> = { -readonly [K in keyof S]: InferField<S[K]> };

/** A config that does not fit its schema; the message names the file, the field and the problem. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The value as a message shows it: numbers as written (NaN, Infinity too), the rest as JSON, cut short. */
export function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number') return Object.is(v, -0) ? '0' : String(v);
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function range(f: { min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean }): string {
  const lo = f.min !== undefined, hi = f.max !== undefined;
  if (lo && hi) return ` in ${f.exclusiveMin ? '(' : '['}${f.min}, ${f.max}${f.exclusiveMax ? ')' : ']'}`;
  if (lo) return ` ${f.exclusiveMin ? '>' : '>='} ${f.min}`;
  if (hi) return ` ${f.exclusiveMax ? '<' : '<='} ${f.max}`;
  return '';
}

function inRange(x: number, f: { min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean }): boolean {
  if (!Number.isFinite(x)) return false;
  if (f.min !== undefined && (f.exclusiveMin ? !(x > f.min) : !(x >= f.min))) return false;
  if (f.max !== undefined && (f.exclusiveMax ? !(x < f.max) : !(x <= f.max))) return false;
  return true;
}

function quoteList(values: readonly string[]): string {
  const q = values.map(v => `'${v}'`);
  return q.length <= 2 ? q.join(' or ') : `one of ${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}

/** What a field accepts, as an error message says it: "a number > 0", "a positive integer or null", ... */
export function expected(f: Field): string {
  switch (f.type) {
    case 'number': return f.min === undefined && f.max === undefined ? 'a finite number' : `a number${range(f)}`;
    case 'int': {
      const base = f.min === 1 && f.max === undefined ? 'a positive integer' : `an integer${range(f)}`;
      return f.nullable ? `${base} or null` : base;
    }
    case 'boolean': return 'true or false';
    case 'enum': return quoteList(f.values);
    case 'string': return 'a non-empty string';
    case 'tuple': return `a list of ${f.default.length} numbers${f.min === undefined && f.max === undefined ? '' : `, each${range(f)}`}`;
    case 'strings': {
      const what = f.values ? `a list of names from ${quoteList(f.values)}` : 'a list of non-empty strings';
      return `${what}${f.minLength ? ` (at least ${f.minLength})` : ''}, without repeats`;
    }
    case 'object': return f.nullable ? 'an object or null' : 'an object';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(where: string, path: string, f: Field, got: unknown, extra = ''): never {
  const note = f.note ? `: ${f.note}` : '';
  throw new ConfigError(`${where}: '${path}' must be ${expected(f)} (got ${shown(got)}${extra})${note}`);
}

function checkField(f: Field, v: unknown, where: string, path: string): unknown {
  switch (f.type) {
    case 'number':
      if (typeof v !== 'number' || !inRange(v, f)) fail(where, path, f, v);
      return v;
    case 'int':
      if (v === null && f.nullable) return null;
      if (typeof v !== 'number' || !Number.isInteger(v) || !inRange(v, f)) fail(where, path, f, v);
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') fail(where, path, f, v);
      return v;
    case 'enum':
      if (typeof v !== 'string' || !f.values.includes(v)) {
        const near = typeof v === 'string' ? didYouMean(v, f.values) : null;
        fail(where, path, f, v, near ? `; did you mean '${near}'?` : '');
      }
      return v;
    case 'string':
      if (typeof v !== 'string' || v === '') fail(where, path, f, v);
      return v;
    case 'tuple':
      if (!Array.isArray(v) || v.length !== f.default.length || v.some(x => typeof x !== 'number' || !inRange(x, f))) fail(where, path, f, v);
      return [...v];
    case 'strings': {
      if (!Array.isArray(v) || v.length < (f.minLength ?? 0)) fail(where, path, f, v);
      v.forEach((x, i) => {
        const at = `${where}: '${path}[${i}]'`;
        if (typeof x !== 'string' || x === '') throw new ConfigError(`${at} must be a non-empty string (got ${shown(x)})`);
        if (f.values && !f.values.includes(x)) {
          const near = didYouMean(x, f.values);
          throw new ConfigError(`${at} must be ${quoteList(f.values)} (got ${shown(x)}${near ? `; did you mean '${near}'?` : ''})`);
        }
        if (v.indexOf(x) !== i) throw new ConfigError(`${at} repeats ${shown(x)} (entry ${v.indexOf(x)})`);
      });
      return [...v];
    }
    case 'object':
      if (v === null && f.nullable) return null;
      if (!isObject(v)) fail(where, path, f, v);
      return walk(f.fields, v, where, `${path}.`);
  }
}

function walk(schema: Schema, raw: Record<string, unknown>, where: string, prefix: string): Record<string, unknown> {
  const keys = Object.keys(schema);
  for (const k of Object.keys(raw)) {
    if (Object.hasOwn(schema, k)) continue;
    const near = didYouMean(k, keys);
    const hint = near ? `did you mean '${prefix}${near}'?` : prefix ? `the keys of '${prefix.slice(0, -1)}' are ${keys.join(', ')}` : `the known keys are ${keys.join(', ')}`;
    throw new ConfigError(`${where}: unknown key '${prefix}${k}' (${hint})`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) {
    const v = raw[k];
    out[k] = v === undefined ? defaultOf(f) : checkField(f, v, where, prefix + k);
  }
  return out;
}

function defaultOf(f: Field): unknown {
  if (f.type === 'object') return f.nullable ? null : defaultsOf(f.fields);
  if (f.type === 'tuple' || f.type === 'strings') return [...f.default];
  return f.default;
}

/** A fresh copy of the schema's defaults. */
export function defaultsOf<S extends Schema>(schema: S): Infer<S> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) out[k] = defaultOf(f);
  return out as Infer<S>;
}

/**
 * Check `raw` (e.g. a parsed JSON file) against `schema`: unknown keys are refused (with a
 * did-you-mean), present fields are type- and range-checked, absent ones (or undefined) take the
 * default. Returns a fresh value. `where` (a file name) starts every error message.
 */
export function validate<S extends Schema>(schema: S, raw: unknown, where: string): Infer<S> {
  if (!isObject(raw)) throw new ConfigError(`${where}: the config must be a JSON object (got ${shown(raw)})`);
  return walk(schema, raw, where, '') as Infer<S>;
}

/** Freeze a value and everything inside it (a defaults table must not be changed by accident). */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** One line per field (nested fields dotted): name, what it accepts, the default and the doc. */
export function describeSchema(schema: Schema, prefix = ''): string[] {
  const lines: string[] = [];
  for (const [k, f] of Object.entries(schema)) {
    if (f.type === 'object') {
      lines.push(f.nullable ? `${prefix}${k}: an object or null, default null. ${f.doc}` : `${prefix}${k}: ${f.doc}`);
      lines.push(...describeSchema(f.fields, `${prefix}${k}.`));
    } else lines.push(`${prefix}${k}: ${expected(f)}, default ${shown(defaultOf(f))}. ${f.doc}`);
  }
  return lines;
}

/** Dotted paths and values of every leaf (objects are walked; lists are leaves). */
export function leaves(v: unknown, prefix = ''): [string, unknown][] {
  if (!isObject(v)) return [[prefix, v]];
  const out: [string, unknown][] = [];
  for (const [k, x] of Object.entries(v)) out.push(...leaves(x, prefix ? `${prefix}.${k}` : k));
  return out;
}
