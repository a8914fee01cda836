/**
 * The command-line layer every CLI shares: one spec gives `--help`, typed and checked values,
 * unknown flags refused with a did-you-mean, and one error path (a one-screen message, exit 1;
 * the stack only with DPAD_DEBUG=1).
 *
 *   const args = parseCli(SPEC);                 // throws UsageError on bad input, exits 0 on --help
 *   await runCli(SPEC, async args => { ... });   // the same, plus the error path around main
 */

export interface OptionSpec {
  /** string, int (a whole number), number, boolean (a flag), list (repeatable string) */
  type: 'string' | 'int' | 'number' | 'boolean' | 'list';
  help: string;
  default?: string | number | boolean | readonly string[];
  /** allowed values of a string option */
  choices?: readonly string[];
  /** bounds of a numeric option (inclusive) */
  min?: number;
  max?: number;
  required?: boolean;
  /** how the value is written in the usage, e.g. <file> */
  placeholder?: string;
}

export interface CliSpec {
  /** what the user types, e.g. `npm run segment --` */
  name: string;
  summary: string;
  options: Readonly<Record<string, OptionSpec>>;
  /** positional arguments: a name for the usage and how many are allowed */
  positionals?: { readonly name: string; readonly help: string; readonly min?: number; readonly max?: number };
  examples?: readonly string[];
}

type ValueOf<O extends OptionSpec> = O['type'] extends 'boolean' ? boolean
  : O['type'] extends 'int' | 'number' ? number
    : O['type'] extends 'list' ? string[]
      : string;

/** Parsed values: options with a default (or required, or boolean/list) are always present. */
export type CliValues<S extends CliSpec> = {
  [K in keyof S['options']]: S['options'][K] extends { default: unknown } | { required: true } | { type: 'boolean' | 'list' }
    ? ValueOf<S['options'][K]>
    : ValueOf<S['options'][K]> | undefined;
} & { _: string[] };

/** A mistake in the command line: printed with the usage line, exit 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Levenshtein distance, for did-you-mean. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The closest of `known` to `word`, when it is close enough to be a likely typo. */
export function didYouMean(word: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.startsWith(word) ? Math.min(1, editDistance(word, k)) : editDistance(word, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function placeholder(name: string, o: OptionSpec): string {
  if (o.type === 'boolean') return '';
  if (o.placeholder) return ` ${o.placeholder}`;
  if (o.choices) return ` <${o.choices.join('|')}>`;
  return o.type === 'int' || o.type === 'number' ? ' <n>' : ` <${name}>`;
}

/** The whole --help text. */
export function usageText(spec: CliSpec): string {
  const lines = [`${spec.summary}`, '', `usage: ${usageLine(spec)}`, '', 'options:'];
  const rows: [string, string][] = Object.entries(spec.options).map(([name, o]) => {
    const dflt = o.default === undefined || (Array.isArray(o.default) && o.default.length === 0) || o.default === false ? '' : ` (default: ${Array.isArray(o.default) ? o.default.join(', ') : String(o.default)})`;
    return [`  --${name}${placeholder(name, o)}`, `${o.help}${o.required ? ' (required)' : ''}${dflt}${o.type === 'list' ? ' (repeatable)' : ''}`];
  });
  rows.push(['  --help', 'print this help and exit']);
  const w = Math.min(34, Math.max(...rows.map(r => r[0].length)) + 2);
  for (const [l, r] of rows) lines.push(l.length >= w ? `${l}\n${' '.repeat(w)}${r}` : `${l.padEnd(w)}${r}`);
  if (spec.positionals) lines.push('', 'arguments:', `  ${spec.positionals.name.padEnd(w - 2)}${spec.positionals.help}`);
  if (spec.examples?.length) lines.push('', 'examples:', ...spec.examples.map(e => `  ${e}`));
  return lines.join('\n');
}

export function usageLine(spec: CliSpec): string {
  const req = Object.entries(spec.options).filter(([, o]) => o.required).map(([n, o]) => `--${n}${placeholder(n, o)}`);
  const p = spec.positionals;
  const many = p?.max === 1 ? '' : '...';
  // required positionals come first (`pretrain.ts clip|sam2|policy --out <dir>`), optional ones last
  if (p && (p.min ?? 0) >= 1) return `${spec.name} ${[`${p.name}${many}`, ...req, '[options]'].join(' ')}`;
  return `${spec.name} ${[...req, '[options]'].join(' ')}${p ? ` [${p.name}${many}]` : ''}`;
}

function convert(name: string, o: OptionSpec, raw: string): string | number {
  if (o.type === 'int' || o.type === 'number') {
    const v = raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(v) || (o.type === 'int' && !Number.isInteger(v))) {
      throw new UsageError(`--${name} expects ${o.type === 'int' ? 'a whole number' : 'a number'}, got ${JSON.stringify(raw)}`);
    }
    if (o.min !== undefined && v < o.min) throw new UsageError(`--${name} must be at least ${o.min}, got ${v}`);
    if (o.max !== undefined && v > o.max) throw new UsageError(`--${name} must be at most ${o.max}, got ${v}`);
    return v;
  }
  if (o.choices && !o.choices.includes(raw)) {
    const near = didYouMean(raw, o.choices);
    throw new UsageError(`--${name} must be one of ${o.choices.join(', ')}, got ${JSON.stringify(raw)}${near ? ` (did you mean ${near}?)` : ''}`);
  }
  return raw;
}

/**
 * Parse `argv` against `spec`. `--help`/`-h` prints the help and exits 0. Everything else that
 * is wrong throws a UsageError naming the flag.
 */
export function parseCli<S extends CliSpec>(spec: S, argv: string[] = process.argv.slice(2)): CliValues<S> {
  const out: Record<string, unknown> = { _: [] as string[] };
  const opts = spec.options;
  for (const [name, o] of Object.entries(opts)) {
    if (o.default !== undefined) out[name] = Array.isArray(o.default) ? o.default.slice() : o.default;
    else if (o.type === 'boolean') out[name] = false;
    else if (o.type === 'list') out[name] = [];
  }
  const seenList = new Set<string>();
  const args = argv.filter(a => a !== '--');
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') {
      console.log(usageText(spec));
      process.exit(0);
    }
    if (!a.startsWith('--')) {
      if (a.startsWith('-') && a.length > 1 && !/^-\d/.test(a)) throw new UsageError(`unknown flag ${a} (flags are written --name)`);
      (out._ as string[]).push(a);
      continue;
    }
    const eq = a.indexOf('=');
    let name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    let inline: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
    let negated = false;
    if (!(name in opts) && name.startsWith('no-') && opts[name.slice(3)]?.type === 'boolean') {
      name = name.slice(3);
      negated = true;
    }
    const o = opts[name];
    if (!o) {
      const near = didYouMean(name, Object.keys(opts));
      throw new UsageError(`unknown flag --${name}${near ? ` (did you mean --${near}?)` : ''}`);
    }
    if (o.type === 'boolean') {
      if (inline !== undefined && !['true', 'false'].includes(inline)) throw new UsageError(`--${name} is a flag: write --${name} or --no-${name}, not --${name}=${inline}`);
      out[name] = negated ? false : inline !== 'false';
      continue;
    }
    if (inline === undefined) {
      if (i + 1 >= args.length || (args[i + 1].startsWith('--') && args[i + 1].length > 2)) throw new UsageError(`--${name} needs a value${placeholder(name, o)}`);
      inline = args[++i];
    }
    const v = convert(name, o, inline);
    if (o.type === 'list') {
      if (!seenList.has(name)) out[name] = [];
      seenList.add(name);
      (out[name] as unknown[]).push(v);
    } else out[name] = v;
  }
  for (const [name, o] of Object.entries(opts)) {
    if (o.required && (out[name] === undefined || (Array.isArray(out[name]) && (out[name] as unknown[]).length === 0))) {
      throw new UsageError(`--${name} is required (${o.help})`);
    }
  }
  const pos = out._ as string[];
  const p = spec.positionals;
  if (!p && pos.length) throw new UsageError(`unexpected argument ${JSON.stringify(pos[0])} (this command takes flags only)`);
  if (p && p.min !== undefined && pos.length < p.min) throw new UsageError(`expected at least ${p.min} ${p.name}`);
  if (p && p.max !== undefined && pos.length > p.max) throw new UsageError(`expected at most ${p.max} ${p.name}, got ${pos.length}`);
  return out as CliValues<S>;
}

/** One screen at most: long messages (a minified bundle in a stack, a huge JSON) are cut. */
export function oneScreen(text: string, maxChars = 1500): string {
  return text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length - maxChars} more characters)` : text;
}

/** The short program name for messages: `npm run segment --` -> `segment`. */
export function progName(name: string): string {
  const m = /^npm run (\S+)/.exec(name) ?? /^npx tsx (\S+)/.exec(name);
  return m ? m[1] : name;
}

/** Print an error the way every CLI does, and give the exit code (1). */
export function reportError(spec: Pick<CliSpec, 'name'>, e: unknown): number {
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.DPAD_DEBUG === '1') console.error(err.stack ?? err.message);
  else {
    console.error(`${progName(spec.name)}: error: ${oneScreen(err.message)}`);
    if (err instanceof UsageError) console.error(`usage: ${usageLine(spec as CliSpec)}\n(run with --help for every option)`);
    else console.error('(set DPAD_DEBUG=1 for the stack trace)');
  }
  return 1;
}

/**
 * Route every uncaught error and unhandled rejection of the process through `reportError`
 * (exit 1). Installed before the backend starts, it runs before the wasm runtime's own handler,
 * which would rethrow (printing its whole minified source) and exit 7.
 */
export function installErrorPath(spec: Pick<CliSpec, 'name'>): void {
  const handler = (e: unknown) => process.exit(reportError(spec, e));
  process.on('uncaughtException', handler);
  process.on('unhandledRejection', handler);
}

/**
 * Parse the command line and run `main` inside the one error path. Exit code: what main returns
 * (default 0), or 1 on any error. Errors never reach the wasm runtime's own unhandled-rejection
 * handler (which prints its whole minified source and exits 7).
 */
export async function runCli<S extends CliSpec>(spec: S, main: (args: CliValues<S>) => Promise<number | void> | number | void): Promise<never> {
  installErrorPath(spec);
  let code: number;
  try {
    const args = parseCli(spec);
    code = (await main(args)) ?? 0;
  } catch (e) {
    code = reportError(spec, e);
  }
  process.exit(code);
}
