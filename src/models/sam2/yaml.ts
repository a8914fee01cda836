/**
 * A strict reader for the YAML subset that hydra model configs are written in (sam2's
 * configs/sam2/*.yaml and configs/sam2.1/*.yaml): block mappings and sequences by indentation,
 * one-line flow lists / maps, plain and quoted scalars, comments. Anything else (anchors,
 * aliases, tags, block scalars, multi-line flow collections, tabs) is refused with its line,
 * never guessed. Scalars resolve as YAML 1.2 core plus OmegaConf's float rule (`1e-6` is a float).
 */

export type YamlValue = null | boolean | number | string | YamlValue[] | { [k: string]: YamlValue };

interface Line { indent: number; text: string; no: number }

function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) return s.slice(0, i);
  }
  return s;
}

/** A plain or quoted scalar, by the YAML 1.2 core schema (+ `1e-6` floats, as OmegaConf reads them). */
export function yamlScalar(raw: string, where: string): YamlValue {
  const s = raw.trim();
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) throw new Error(`${where}: unterminated string ${s}`);
    return JSON.parse(s) as string;
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new Error(`${where}: unterminated string ${s}`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[&*!|>%@`]/.test(s)) throw new Error(`${where}: YAML feature not supported in a model config: ${s}`);
  if (s === '' || s === '~' || /^(null|Null|NULL)$/.test(s)) return null;
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?(0|[1-9][0-9_]*)$/.test(s)) return Number(s.replace(/_/g, ''));
  if (/^0x[0-9a-fA-F]+$/.test(s)) return Number.parseInt(s.slice(2), 16);
  if (/^[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return Number(s.replace(/_/g, ''));
  if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(s)) return NaN;
  return s;
}

/** `[1, 2, [3]]` or `{a: 1}` on one line */
function parseFlow(s: string, where: string): YamlValue {
  let i = 0;
  const ws = () => { while (i < s.length && /\s/.test(s[i])) i++; };
  const value = (): YamlValue => {
    ws();
    if (s[i] === '[') {
      i++;
      const out: YamlValue[] = [];
      ws();
      if (s[i] === ']') { i++; return out; }
      for (;;) {
        out.push(value());
        ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === ']') { i++; return out; }
        throw new Error(`${where}: expected ',' or ']' in ${s}`);
      }
    }
    if (s[i] === '{') {
      i++;
      const out: { [k: string]: YamlValue } = {};
      ws();
      if (s[i] === '}') { i++; return out; }
      for (;;) {
        const k = scalarUntil(/[:,}\]]/);
        if (s[i] !== ':') throw new Error(`${where}: expected ':' after key ${k} in ${s}`);
        i++;
        out[String(k)] = value();
        ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === '}') { i++; return out; }
        throw new Error(`${where}: expected ',' or '}' in ${s}`);
      }
    }
    return scalarUntil(/[,\]}]/);
  };
  const scalarUntil = (stop: RegExp): YamlValue => {
    ws();
    const start = i;
    if (s[i] === '"' || s[i] === "'") {
      const q = s[i++];
      while (i < s.length && s[i] !== q) i += s[i] === '\\' && q === '"' ? 2 : 1;
      i++;
    } else while (i < s.length && !stop.test(s[i])) i++;
    return yamlScalar(s.slice(start, i), where);
  };
  const v = value();
  ws();
  if (i !== s.length) throw new Error(`${where}: unexpected text after the flow collection: ${s.slice(i)}`);
  return v;
}

function parseValue(s: string, where: string): YamlValue {
  const t = s.trim();
  if (t.startsWith('[') || t.startsWith('{')) return parseFlow(t, where);
  return yamlScalar(t, where);
}

/** `key: rest` -> [key, rest], or null when the text is not a mapping entry */
function splitKey(text: string): [string, string] | null {
  const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"[\]{},][^:]*?)\s*:(\s+(.*))?$/.exec(text);
  if (!m) return null;
  const k = m[1].startsWith('"') || m[1].startsWith("'") ? String(yamlScalar(m[1], '')) : m[1];
  return [k, m[3] ?? ''];
}

/** Parse YAML text (the subset above) into plain values. `file` names the source in errors. */
export function parseYaml(text: string, file = 'yaml'): YamlValue {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, n) => {
    if (/^\t/.test(raw) || /^ *\t/.test(raw)) throw new Error(`${file}:${n + 1}: tabs are not allowed in YAML indentation`);
    const body = stripComment(raw).replace(/\s+$/, '');
    if (!body.trim() || body === '---' || body === '...') return;
    lines.push({ indent: body.length - body.trimStart().length, text: body.trim(), no: n + 1 });
  });
  let p = 0;
  const at = (l: Line) => `${file}:${l.no}`;

  const block = (indent: number): YamlValue => {
    const first = lines[p];
    if (first.text.startsWith('- ') || first.text === '-') {
      const out: YamlValue[] = [];
      while (p < lines.length && lines[p].indent === indent && (lines[p].text.startsWith('- ') || lines[p].text === '-')) {
        const l = lines[p];
        const rest = l.text.slice(1).trimStart();
        if (!rest) {
          p++;
          out.push(p < lines.length && lines[p].indent > indent ? block(lines[p].indent) : null);
        } else if (splitKey(rest) && !rest.startsWith('[') && !rest.startsWith('{')) {
          // "- key: v" opens a mapping whose keys sit at the column after the dash
          const col = indent + (l.text.length - rest.length);
          lines[p] = { indent: col, text: rest, no: l.no };
          out.push(block(col));
        } else {
          p++;
          out.push(parseValue(rest, at(l)));
        }
      }
      return out;
    }
    const out: { [k: string]: YamlValue } = {};
    while (p < lines.length && lines[p].indent === indent) {
      const l = lines[p];
      const kv = splitKey(l.text);
      if (!kv) throw new Error(`${at(l)}: expected 'key: value', got ${l.text}`);
      const [k, rest] = kv;
      if (k in out) throw new Error(`${at(l)}: duplicate key ${k}`);
      p++;
      if (rest.trim()) out[k] = parseValue(rest, at(l));
      else if (p < lines.length && (lines[p].indent > indent || (lines[p].indent === indent && lines[p].text.startsWith('- ')))) out[k] = block(lines[p].indent);
      else out[k] = null;
    }
    if (p < lines.length && lines[p].indent > indent) throw new Error(`${at(lines[p])}: unexpected indentation`);
    return out;
  };

  if (!lines.length) return null;
  if (lines.length === 1 && !splitKey(lines[0].text) && !lines[0].text.startsWith('- ')) return parseValue(lines[0].text, at(lines[0]));
  const v = block(lines[0].indent);
  if (p < lines.length) throw new Error(`${at(lines[p])}: indentation does not match any open block`);
  return v;
}
