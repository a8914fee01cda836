/**
 * The golden harness: runs the cases of a fixture directory (../shared/fixtures/README.md)
 * through the adapter its family registers and checks every expected output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../../src/io/dtypes.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';

/** A value an adapter returns for one output. */
export type OutputValue = number | boolean | string | null | NestedNumbers | RawTensor | tf.Tensor | { shape: number[]; data: ArrayLike<number> };

/** A JSON list of numbers, possibly nested (`[[405, 57], [804, 150]]`). */
export type NestedNumbers = Array<number | boolean | NestedNumbers>;

export interface FixtureJson {
  family: string;
  source?: string;
  config?: Record<string, unknown>;
  weights?: { file: string; format: string };
  assets?: Record<string, string>;
  cases: CaseJson[];
}

export interface CaseJson {
  name: string;
  entry: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, ExpectedJson>;
}

export interface ExpectedJson {
  tensor?: string;
  value?: unknown;
  check: 'exact' | 'allclose' | 'mean_abs';
  atol?: number;
  rtol?: number;
  max?: number;
}

/** What an adapter sees: the fixture, its directory, and resolved inputs. */
export interface FixtureContext {
  dir: string;
  fixture: FixtureJson;
  /** per-fixture state an adapter may cache (e.g. the loaded model) */
  state: Map<string, unknown>;
}

export type EntryFn = (inputs: Record<string, unknown>, ctx: FixtureContext) => Promise<Record<string, OutputValue | undefined>> | Record<string, OutputValue | undefined>;

export interface FamilyAdapter {
  family: string;
  entries: Record<string, EntryFn>;
  /** release what the adapter cached in ctx.state */
  teardown?: (ctx: FixtureContext) => void;
}

export interface CheckLine {
  fixture: string;
  case: string;
  output: string;
  maxAbs: number;
  maxRel: number;
  pass: boolean;
  note?: string;
}

export class FixtureError extends Error {
  constructor(dir: string, message: string) {
    super(`${dir}: ${message}`);
    this.name = 'FixtureError';
  }
}

function isRaw(v: unknown): v is { shape: number[]; data: ArrayLike<number> } {
  return !!v && typeof v === 'object' && 'shape' in v && 'data' in v;
}

function flatten(v: OutputValue): { shape: number[]; data: ArrayLike<number> } {
  if (v instanceof tf.Tensor) return { shape: v.shape.slice(), data: v.dataSync() as ArrayLike<number> };
  if (typeof v === 'number') return { shape: [], data: [v] };
  if (typeof v === 'boolean') return { shape: [], data: [v ? 1 : 0] };
  if (Array.isArray(v)) return flattenNested(v);
  if (isRaw(v)) return { shape: v.shape, data: v.data };
  throw new Error(`unsupported output value ${String(v)}`);
}

/** A nested JSON list as shape + row-major data; a ragged list gets shape [-1] (it never matches). */
export function flattenNested(v: unknown[]): { shape: number[]; data: number[] } {
  const shape: number[] = [];
  for (let cur: unknown = v; Array.isArray(cur); cur = cur[0]) shape.push(cur.length);
  const data: number[] = [];
  let ragged = false;
  const walk = (x: unknown, depth: number) => {
    if (depth === shape.length) {
      if (Array.isArray(x)) ragged = true;
      else data.push(Number(x));
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) {
      ragged = true;
      return;
    }
    for (const y of x) walk(y, depth + 1);
  };
  walk(v, 0);
  return { shape: ragged ? [-1] : shape, data };
}

/** Compare two non-numeric JSON values (strings, null, nested lists of strings) exactly. */
function compareJson(actual: unknown, expected: unknown): { maxAbs: number; maxRel: number; pass: boolean; note?: string } {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a === e) return { maxAbs: 0, maxRel: 0, pass: true };
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  const clip = (t: string) => (t.length > 60 ? `${t.slice(0, 60)}…` : t);
  return { maxAbs: NaN, maxRel: NaN, pass: false, note: `differs at character ${i}: got ${clip(a.slice(i))}, expected ${clip(e.slice(i))}` };
}

function isNumericJson(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'boolean') return true;
  return Array.isArray(v) && v.every(isNumericJson);
}

/** Compare an actual output against its expectation; returns the error figures and verdict. */
export function compare(actual: { shape: number[]; data: ArrayLike<number> }, expected: { shape: number[]; data: ArrayLike<number> }, exp: ExpectedJson): { maxAbs: number; maxRel: number; pass: boolean; note?: string } {
  const na = actual.data.length;
  const ne = expected.data.length;
  const shapeOk = actual.shape.length === expected.shape.length && actual.shape.every((d, i) => d === expected.shape[i]);
  const scalarLike = ne === 1 && na === 1;
  if (!shapeOk && !scalarLike) {
    return { maxAbs: NaN, maxRel: NaN, pass: false, note: `shape [${actual.shape}] != expected [${expected.shape}]` };
  }
  let maxAbs = 0;
  let maxRel = 0;
  let sumAbs = 0;
  let pass = true;
  let mismatched = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  const atol = exp.atol ?? 0;
  const rtol = exp.rtol ?? 0;
  for (let i = 0; i < ne; i++) {
    const a = Number(actual.data[i]);
    const e = Number(expected.data[i]);
    let d = Math.abs(a - e);
    if (Number.isNaN(a) && Number.isNaN(e)) d = 0;
    else if (a === e) d = 0; // equal infinities
    else if (Number.isNaN(d)) d = Infinity;
    const rel = d === 0 ? 0 : d / Math.abs(e);
    if (d > maxAbs) maxAbs = d;
    if (rel > maxRel) maxRel = rel;
    sumAbs += d;
    // how far past its own bound this element lies (exact: bound 0)
    const bound = exp.check === 'allclose' ? atol + rtol * Math.abs(e) : 0;
    const bad = exp.check === 'exact' ? d !== 0 : exp.check === 'allclose' ? !(d <= bound) : false;
    if (bad) {
      mismatched++;
      pass = false;
      const excess = d - bound;
      if (worst < 0 || excess > worstExcess || Number.isNaN(excess)) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (exp.check === 'mean_abs') {
    const mean = ne ? sumAbs / ne : 0;
    pass = mean <= (exp.max ?? 0);
    return { maxAbs, maxRel, pass, note: `mean_abs ${mean.toExponential(3)} (max ${exp.max})` };
  }
  if (!pass) {
    const at = unravel(worst, expected.shape);
    const note = `${mismatched} of ${ne} elements mismatch; worst at [${at}] (flat ${worst}): got ${Number(actual.data[worst])}, expected ${Number(expected.data[worst])}`;
    return { maxAbs, maxRel, pass, note };
  }
  return { maxAbs, maxRel, pass };
}

/** Row-major flat index -> multi-index for `shape`. */
function unravel(flat: number, shape: number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1, r = flat; d >= 0; d--) {
    idx[d] = r % shape[d];
    r = Math.floor(r / shape[d]);
  }
  return idx;
}

export function readFixture(dir: string): FixtureJson {
  const f = path.join(dir, 'fixture.json');
  if (!fs.existsSync(f)) throw new FixtureError(dir, 'no fixture.json');
  let json: FixtureJson;
  try {
    json = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch (e) {
    throw new FixtureError(dir, `fixture.json is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json.family !== 'string') throw new FixtureError(dir, "fixture.json has no 'family'");
  if (!Array.isArray(json.cases)) throw new FixtureError(dir, "fixture.json has no 'cases' list");
  for (const c of json.cases) {
    if (typeof c.name !== 'string' || typeof c.entry !== 'string' || !c.inputs || !c.outputs) {
      throw new FixtureError(dir, `malformed case ${JSON.stringify(c).slice(0, 120)}`);
    }
    for (const [o, e] of Object.entries(c.outputs)) {
      if (!['exact', 'allclose', 'mean_abs'].includes(e.check)) throw new FixtureError(dir, `case ${c.name}, output ${o}: unknown check '${e.check}'`);
      if (e.tensor === undefined && !('value' in e)) throw new FixtureError(dir, `case ${c.name}, output ${o}: neither 'tensor' nor 'value'`);
    }
  }
  return json;
}

export interface RunResult {
  lines: CheckLine[];
  /** problems that are failures without a checked output: unknown entries, adapter errors */
  errors: string[];
}

/** Run every case of one fixture directory. `adapters` maps family -> adapter. */
export async function runFixture(dir: string, adapters: Map<string, FamilyAdapter>, opts: { onLine?: (l: CheckLine | string) => void } = {}): Promise<RunResult> {
  const fixture = readFixture(dir);
  const name = path.basename(dir);
  const lines: CheckLine[] = [];
  const errors: string[] = [];
  const emit = opts.onLine ?? (() => {});
  const tensorsPath = path.join(dir, 'tensors.safetensors');
  const tensors = fs.existsSync(tensorsPath) ? SafetensorsFile.open(tensorsPath) : null;
  const adapter = adapters.get(fixture.family);
  const ctx: FixtureContext = { dir, fixture, state: new Map() };
  try {
    for (const c of fixture.cases) {
      const fn = adapter?.entries[c.entry];
      if (!fn) {
        const msg = `${name}/${c.name}: no adapter for ${c.entry.split('.')[0]}.* (entry '${c.entry}')`;
        errors.push(msg);
        emit(msg);
        continue;
      }
      const inputs: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(c.inputs)) {
        if (typeof v === 'string' && v.startsWith('tensor:')) {
          const key = v.slice('tensor:'.length);
          if (!tensors || !tensors.has(key)) throw new FixtureError(dir, `case ${c.name}: input ${k} refers to missing tensor '${key}'`);
          inputs[k] = tensors.read(key);
        } else inputs[k] = v;
      }
      let out: Record<string, OutputValue | undefined>;
      try {
        out = await fn(inputs, ctx);
      } catch (e) {
        const msg = `${name}/${c.name}: ${c.entry} threw: ${(e as Error).stack ?? e}`;
        errors.push(msg);
        emit(msg);
        continue;
      }
      for (const [o, exp] of Object.entries(c.outputs)) {
        const got = out[o];
        let line: CheckLine;
        if (got === undefined) {
          line = { fixture: name, case: c.name, output: o, maxAbs: NaN, maxRel: NaN, pass: false, note: 'the adapter returned no such output' };
        } else if (exp.tensor === undefined && !isNumericJson(exp.value)) {
          // strings, null, lists of strings: compared exactly as JSON
          if (exp.check !== 'exact') throw new FixtureError(dir, `case ${c.name}, output ${o}: a non-numeric value needs check 'exact', not '${exp.check}'`);
          line = { fixture: name, case: c.name, output: o, ...compareJson(got, exp.value) };
        } else if (typeof got === 'string' || got === null) {
          line = { fixture: name, case: c.name, output: o, maxAbs: NaN, maxRel: NaN, pass: false, note: `got ${JSON.stringify(got)?.slice(0, 60)}, expected a number` };
        } else {
          let expected: { shape: number[]; data: ArrayLike<number> };
          if (exp.tensor !== undefined) {
            if (!tensors || !tensors.has(exp.tensor)) throw new FixtureError(dir, `case ${c.name}: expected tensor '${exp.tensor}' is missing`);
            expected = tensors.read(exp.tensor);
          } else if (typeof exp.value === 'number' || typeof exp.value === 'boolean') {
            expected = { shape: [], data: [Number(exp.value)] };
          } else if (Array.isArray(exp.value)) {
            expected = flattenNested(exp.value);
          } else {
            throw new FixtureError(dir, `case ${c.name}, output ${o}: unsupported expected value ${JSON.stringify(exp.value)}`);
          }
          const r = compare(flatten(got), expected, exp);
          line = { fixture: name, case: c.name, output: o, ...r };
        }
        lines.push(line);
        emit(line);
      }
      for (const v of Object.values(out)) if (v instanceof tf.Tensor) v.dispose();
    }
  } finally {
    adapter?.teardown?.(ctx);
    tensors?.close();
  }
  return { lines, errors };
}

export function formatLine(l: CheckLine): string {
  const f = (x: number) => (Number.isNaN(x) ? 'nan' : x.toExponential(2));
  return `${l.fixture}/${l.case}  ${l.output}  max_abs=${f(l.maxAbs)}  max_rel=${f(l.maxRel)}  ${l.pass ? 'PASS' : 'FAIL'}${l.note ? `  (${l.note})` : ''}`;
}
