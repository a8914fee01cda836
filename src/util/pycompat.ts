/**
 * The few CPython behaviours the reference reward code relies on, reproduced exactly:
 * `json.loads` (which accepts NaN / Infinity), `int()` of JSON values, `str.strip()` and
 * the regex `\s` class (Unicode whitespace as str.isspace defines it), and `max`/`min`
 * of two values (which keep the first argument unless the second compares greater/less,
 * so NaN propagates only from the first position).
 */

/** A value of Python's json.loads: objects are Maps (key order and any key name preserved). */
export type PyValue = number | boolean | null | string | PyValue[] | PyDict;
export type PyDict = Map<string, PyValue>;

/** Python's TypeError / KeyError / ValueError, for code paths the reference guards with `except`. */
export class PyError extends Error {
  readonly kind: 'TypeError' | 'KeyError' | 'ValueError' | 'IndexError' | 'OverflowError' | 'ZeroDivisionError' | 'JSONDecodeError' | 'UnboundLocalError' | 'RecursionError';
  /** what CPython 3.11's str(e) prints (the released evaluation records it as `[Error]... {e}`) */
  readonly detail: string;
  /**
   * `detail` is Python's own text; `context` (optional) names the value at fault for our messages:
   * message = `kind: detail (context)`.
   */
  constructor(kind: PyError['kind'], detail: string, context?: string) {
    super(`${kind}: ${detail}${context ? ` (${context})` : ''}`);
    this.name = 'PyError';
    this.kind = kind;
    this.detail = detail;
  }
}

/** repr() of a str: single quotes unless the text holds a single quote and no double quote. */
export function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + q;
}

/** The characters str.isspace() accepts, which is also what `\s` matches in a str pattern. */
export const PY_WHITESPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_SET = new RegExp(`^[${PY_WHITESPACE}]$`);

export function pyIsSpace(ch: string): boolean {
  return WS_SET.test(ch);
}

/** str.isspace() of one UTF-16 code unit (no whitespace lies outside the BMP) */
export function pyIsSpaceCode(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
  if (c < 0x85) return false;
  return c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** str.strip() with no argument */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && pyIsSpaceCode(s.charCodeAt(a))) a++;
  while (b > a && pyIsSpaceCode(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** round(x) for floats: halves go to the even neighbour */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** max(a, b) as CPython evaluates it for two numbers: b if b > a else a */
export function pyMax(a: number, b: number): number {
  return b > a ? b : a;
}

/** min(a, b): b if b < a else a */
export function pyMin(a: number, b: number): number {
  return b < a ? b : a;
}

/** A Python number: int/float, or bool (a subclass of int). Anything else raises TypeError. */
export function pyNumber(v: PyValue | undefined, what: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new PyError('TypeError', `${what} is ${pyTypeName(v)}, not a number`);
}

export function pyTypeName(v: PyValue | undefined): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'NoneType';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (Array.isArray(v)) return 'list';
  return 'dict';
}

/** len(v) for str (code points), list and dict; TypeError otherwise */
export function pyLen(v: PyValue | undefined, what: string): number {
  if (typeof v === 'string') return Array.from(v).length;
  if (Array.isArray(v)) return v.length;
  if (v instanceof Map) return v.size;
  throw new PyError('TypeError', `object of type '${pyTypeName(v)}' has no len()`, what);
}

/** v[i] for list and str (code points); a dict raises KeyError (JSON keys are strings) */
export function pyIndex(v: PyValue | undefined, i: number, what: string): PyValue {
  if (Array.isArray(v)) {
    if (i >= v.length) throw new PyError('IndexError', 'list index out of range', `${what}[${i}]`);
    return v[i];
  }
  if (typeof v === 'string') {
    const cps = Array.from(v);
    if (i >= cps.length) throw new PyError('IndexError', 'string index out of range', `${what}[${i}]`);
    return cps[i];
  }
  if (v instanceof Map) throw new PyError('KeyError', String(i), `${what}[${i}]`);
  throw new PyError('TypeError', `'${pyTypeName(v)}' object is not subscriptable`, what);
}

/** dict[key]: KeyError when absent, TypeError when not a dict */
export function pyGet(d: PyValue | undefined, key: string): PyValue {
  if (!(d instanceof Map)) throw new PyError('TypeError', `${pyTypeName(d)} is not a dict`);
  if (!d.has(key)) throw new PyError('KeyError', pyRepr(key));
  return d.get(key)!;
}

const PY_INT_LITERAL = new RegExp(`^[${PY_WHITESPACE}]*([+-]?)(\\p{Nd}(?:_?\\p{Nd})*)[${PY_WHITESPACE}]*$`, 'u');
const ND = /^\p{Nd}$/u;

/**
 * The value of a Unicode decimal digit (what Python's `\d` and int() accept: category Nd), or
 * -1. Nd digits come in contiguous 0..9 blocks, and blocks that touch start ten apart.
 */
export function pyDecimalValue(cp: number): number {
  if (cp >= 0x30 && cp <= 0x39) return cp - 0x30;
  if (cp < 0x80 || !ND.test(String.fromCodePoint(cp))) return -1;
  let z = cp;
  while (ND.test(String.fromCodePoint(z - 1))) z--;
  return (cp - z) % 10;
}

/** a run of Unicode decimal digits as the ASCII digits of the same number */
export function pyAsciiDigits(s: string): string {
  let out = '';
  for (const ch of s) out += String.fromCharCode(0x30 + pyDecimalValue(ch.codePointAt(0)!));
  return out;
}

/** int(v): truncation of floats, bools as 0/1, base-10 strings as Python parses them (any Unicode decimal digits) */
export function pyInt(v: PyValue | undefined, what: string): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) throw new PyError('ValueError', 'cannot convert float NaN to integer', what);
    if (!Number.isFinite(v)) throw new PyError('OverflowError', 'cannot convert float infinity to integer', what);
    return Math.trunc(v) + 0; // +0 turns -0 into 0, as int(-0.5) == 0
  }
  if (typeof v === 'string') {
    const m = PY_INT_LITERAL.exec(v);
    if (!m) throw new PyError('ValueError', `invalid literal for int() with base 10: ${pyRepr(v)}`, what);
    const n = Number(pyAsciiDigits(m[2].replace(/_/g, '')));
    return m[1] === '-' ? -n + 0 : n;
  }
  throw new PyError('TypeError', `int() argument must be a string, a bytes-like object or a real number, not '${pyTypeName(v)}'`, what);
}

/**
 * json.loads(text) with CPython's defaults: strict strings (no raw control characters),
 * NaN / Infinity / -Infinity accepted, duplicate keys resolved to the last, whitespace
 * limited to space, tab, LF and CR. Throws PyError('JSONDecodeError', ...) with the position.
 * Arrays or objects nested deeper than JSON_MAX_DEPTH raise RecursionError as CPython's scanner
 * does at its recursion limit (1000, less the caller's depth), instead of overflowing the stack.
 */
export const JSON_MAX_DEPTH = 1000;

export function pyJsonLoads(text: string): PyValue {
  let i = 0;
  let depth = 0;
  const enter = (what: 'object' | 'array') => {
    if (++depth > JSON_MAX_DEPTH) throw new PyError('RecursionError', `maximum recursion depth exceeded while decoding a JSON ${what} from a unicode string`);
  };
  const n = text.length;
  // CPython's JSONDecodeError text: `msg: line L column C (char P)`
  const fail = (msg: string, pos = i): never => {
    const line = text.slice(0, pos).split('\n').length;
    const col = pos - (pos > 0 ? text.lastIndexOf('\n', pos - 1) : -1);
    throw new PyError('JSONDecodeError', `${msg}: line ${line} column ${col} (char ${pos})`);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const NUM = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
  const parseString = (): string => {
    const begin = i;
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= n) fail('Unterminated string starting at', begin);
      const c = text.charCodeAt(i);
      if (c === 0x22) { i++; return out; }
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === undefined) fail('Unterminated string starting at', begin);
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) { out += simple[e]; i += 2; continue; }
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('Invalid \\uXXXX escape', i + 1);
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
          continue;
        }
        fail('Invalid \\escape');
      }
      if (c < 0x20) fail('Invalid control character at');
      out += text[i];
      i++;
    }
  };
  const value = (): PyValue => {
    ws();
    if (i >= n) fail('Expecting value');
    const c = text[i];
    if (c === '{') {
      i++;
      enter('object');
      const d: PyDict = new Map();
      ws();
      if (text[i] === '}') { i++; depth--; return d; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('Expecting property name enclosed in double quotes');
        const k = parseString();
        ws();
        if (text[i] !== ':') fail("Expecting ':' delimiter");
        i++;
        d.set(k, value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; depth--; return d; }
        fail("Expecting ',' delimiter");
      }
    }
    if (c === '[') {
      i++;
      enter('array');
      const a: PyValue[] = [];
      ws();
      if (text[i] === ']') { i++; depth--; return a; }
      for (;;) {
        a.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; depth--; return a; }
        fail("Expecting ',' delimiter");
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith('null', i)) { i += 4; return null; }
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    if (text.startsWith('NaN', i)) { i += 3; return NaN; }
    if (text.startsWith('Infinity', i)) { i += 8; return Infinity; }
    if (text.startsWith('-Infinity', i)) { i += 9; return -Infinity; }
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (m) {
      i += m[0].length;
      return Number(m[0]);
    }
    return fail('Expecting value');
  };
  const v = value();
  ws();
  if (i !== n) fail('Extra data');
  return v;
}
