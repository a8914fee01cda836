/**
 * The layering of src/: every relative import (static, re-export or dynamic) must point to the
 * same folder or to a LOWER layer. The order, bottom to top (folders of one rank are siblings and
 * may not import each other):
 *   0 io        file formats, images, atomic writes
 *   1 util      Python-compatible helpers, scans, CLI, schema, plots, progress
 *   2 nn        module base and layers        | backend  tfjs backend choice and kernel patches
 *   3 optim     AdamW, schedules, the shared optimizer step
 *   4 models    CLIP, Qwen2.5-VL, SAM2
 *   5 prompt    the DPAD text protocol: template, answer parsing, answer geometry
 *   6 data      dataset types, loaders, the world, openDataset
 *   7 rewards   reward registry and components | pipeline  policy, segmenter, frames | realsize
 *   8 rl        the GRPO trainer
 *   9 eval      evaluation, metrics, figures
 *  10 demo      building and measuring the demo weights
 *  11 index.ts  the public API
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const SRC = path.resolve(import.meta.dirname, '../src');

/** folder (or root file without .ts) -> rank */
export const LAYERS: Record<string, number> = {
  io: 0, util: 1, nn: 2, backend: 2, optim: 3, models: 4, prompt: 5, data: 6,
  rewards: 7, pipeline: 7, realsize: 7, rl: 8, eval: 9, dist: 9, demo: 10, index: 11,
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** the layer of a path under src/: its first folder, or a root file's name */
function layerOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length === 1 ? rel[0].replace(/\.ts$/, '') : rel[0];
}

/** the relative specifiers a file imports: `from '...'`, `import '...'`, `import('...')` */
export function importSpecifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) out.push(m[1]);
  return out;
}

/** every import that does not point down (or within its folder), as 'file -> target (a -> b)' */
export function upwardImports(files: string[], read: (file: string) => string = f => fs.readFileSync(f, 'utf8')): string[] {
  const bad: string[] = [];
  for (const f of files) {
    const from = layerOf(f);
    for (const spec of importSpecifiers(read(f))) {
      const to = layerOf(path.resolve(path.dirname(f), spec));
      if (from === to) continue;
      const rel = `${path.relative(SRC, f)} -> ${spec}`;
      if (!(from in LAYERS)) bad.push(`${rel}: src/${from} has no layer (add it to LAYERS in test/layers.test.ts)`);
      else if (!(to in LAYERS)) bad.push(`${rel}: src/${to} has no layer (add it to LAYERS in test/layers.test.ts)`);
      else if (LAYERS[to] >= LAYERS[from]) bad.push(`${rel}: ${from} (layer ${LAYERS[from]}) imports ${to} (layer ${LAYERS[to]})`);
    }
  }
  return bad;
}

test('no import in src/ runs up a layer or sideways', () => {
  const bad = upwardImports(sourceFiles(SRC));
  assert.equal(bad, [], `upward imports:\n${bad.join('\n')}`);
});

test('the import scan sees static, multi-line, re-export and dynamic imports', () => {
  const text = "import {\n  a,\n  b,\n} from '../rl/x.ts';\nexport * from './y.ts';\nconst m = await import('../eval/z.ts');\nimport '../io/side.ts';\nimport * as tf from '@tensorflow/tfjs-core';";
  assert.equal(importSpecifiers(text), ['../rl/x.ts', './y.ts', '../eval/z.ts', '../io/side.ts']);
});

test('an upward or sideways import is reported with both layers', () => {
  const probe = (dir: string, text: string) => upwardImports([path.join(SRC, dir, 'probe.ts')], () => text);
  assert.equal(probe('data', "import type { EvalSample } from '../eval/evaluate.ts';"), ['data/probe.ts -> ../eval/evaluate.ts: data (layer 6) imports eval (layer 9)']);
  assert.equal(probe('pipeline', "import { x } from '../rewards/registry.ts';"), ['pipeline/probe.ts -> ../rewards/registry.ts: pipeline (layer 7) imports rewards (layer 7)']);
  assert.equal(probe('models/clip', "import { pyRound } from '../../util/pycompat.ts';"), []);
});

test.run();
