import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import {
  ABLATION_METRICS, ABLATION_VARIANT_NAMES, ABLATION_VARIANTS, ablationJson, ablationMarkdown, meanStd, parseVariants, summarizeAblation, type AblationRun,
} from '../src/eval/ablation_table.ts';
import type { MetricTable } from '../src/eval/metrics.ts';
import { UsageError } from '../src/util/cli.ts';

/** a synthetic metric table: gIoU / cIoU as fractions, the S figures x100 as MetricTable holds them */
function table(o: { gIoU: number; cIoU: number; tok: number; S1: number; S2: number; SNR: number; TS1: number; TS2: number; TSNR: number; n?: number }): MetricTable {
  return {
    n: o.n ?? 200, dropped: 0, gIoU: o.gIoU, cIoU: o.cIoU, tokens: { n: 200, mean: o.tok, std: 0, median: o.tok, min: o.tok, max: o.tok },
    S1: o.S1, S2: o.S2, SNR: o.SNR, SNR_ratio_of_means: o.S1 / o.S2, TS1: o.TS1, TS2: o.TS2, TSNR: o.TSNR, TSNR_ratio_of_means: o.TS1 / o.TS2,
  };
}

const runs: AblationRun[] = [
  { variant: 'baseline', seed: 9, table: table({ gIoU: 0.1, cIoU: 0.2, tok: 30, S1: 20, S2: 25, SNR: 0.8, TS1: 22, TS2: 22, TSNR: 1 }) },
  { variant: 'baseline', seed: 10, table: table({ gIoU: 0.2, cIoU: 0.3, tok: 40, S1: 22, S2: 25, SNR: 0.9, TS1: 24, TS2: 22, TSNR: 1.1 }) },
  { variant: 'dpad-binary', seed: 9, table: table({ gIoU: 0.3, cIoU: 0.35, tok: 20, S1: 30, S2: 24, SNR: 1.25, TS1: 25, TS2: 20, TSNR: 1.25, n: 199 }) },
];

test('meanStd: the mean and the sample standard deviation (n - 1), 0 for one value', () => {
  assert.equal(meanStd([1, 2, 3]), { mean: 2, std: 1, n: 3 });
  assert.equal(meanStd([5]), { mean: 5, std: 0, n: 1 });
  const r = meanStd([0.1, 0.2]);
  assert.ok(Math.abs(r.mean - 0.15) < 1e-12 && Math.abs(r.std - Math.SQRT1_2 * 0.1) < 1e-12);
  assert.throws(() => meanStd([]), (e: Error) => e.message === 'ablation: mean ± std of no runs');
});

test('summarizeAblation: mean ± std over seeds per variant, in first-seen order', () => {
  const s = summarizeAblation(runs);
  assert.equal(s.map(r => [r.variant, r.seeds]), [['baseline', [9, 10]], ['dpad-binary', [9]]]);
  assert.equal(Object.keys(s[0].metrics), ABLATION_METRICS.map(m => m.key));
  assert.ok(Math.abs(s[0].metrics.gIoU.mean - 0.15) < 1e-12);
  assert.equal(s[0].metrics.tokens, { mean: 35, std: Math.sqrt(50), n: 2 });
  assert.equal(s[0].metrics.SNR_ratio_of_means.mean, (20 / 25 + 22 / 25) / 2);
  assert.equal(s[1].metrics.TSNR, { mean: 1.25, std: 0, n: 1 });
  assert.throws(() => summarizeAblation([runs[0], runs[0]]), (e: Error) => e.message === 'ablation: variant baseline has seed 9 twice');
});

test('ablationMarkdown: the summary table (warm start without ±) and the per-seed table', () => {
  const warm = table({ gIoU: 0.05, cIoU: 0.06, tok: 50, S1: 21, S2: 24, SNR: 0.875, TS1: 20, TS2: 20, TSNR: 1 });
  const md = ablationMarkdown({ title: 'Ablation T', notes: ['note one'], warmStart: warm, runs });
  const lines = md.split('\n');
  assert.is(lines[0], '# Ablation T');
  assert.ok(lines.includes('note one'));
  const head = '| method | seeds | gIoU | cIoU | #Tok | S1 | S2 | SNR (mean of ratios) | SNR (ratio of means) | TS1 | TS2 | TSNR (mean of ratios) | TSNR (ratio of means) |';
  const i = lines.indexOf(head);
  assert.ok(i > 0, md);
  assert.is(lines[i + 1], '|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  assert.is(lines[i + 2], '| warm-start | - | 5.0 | 6.0 | 50.0 | 21.00 | 24.00 | 0.875 | 0.875 | 20.00 | 20.00 | 1.000 | 1.000 |');
  // baseline: gIoU 10, 20 -> 15.0 ± 7.1; cIoU 20, 30 -> 25.0 ± 7.1; #Tok 30, 40 -> 35.0 ± 7.1; S1 20, 22 -> 21.00 ± 1.41; S2 25 ± 0;
  // SNR 0.8, 0.9 -> 0.850 ± 0.071; S1/S2 0.8, 0.88 -> 0.840 ± 0.057; TS1 22, 24 -> 23.00 ± 1.41; TSNR 1, 1.1 -> 1.050 ± 0.071; TS1/TS2 1, 1.0909 -> 1.045 ± 0.064
  assert.is(lines[i + 3], '| baseline | 2 | 15.0 ± 7.1 | 25.0 ± 7.1 | 35.0 ± 7.1 | 21.00 ± 1.41 | 25.00 ± 0.00 | 0.850 ± 0.071 | 0.840 ± 0.057 | 23.00 ± 1.41 | 22.00 ± 0.00 | 1.050 ± 0.071 | 1.045 ± 0.064 |');
  // one seed: no ± (a spread of one value is not 0, it is unknown)
  assert.is(lines[i + 4], '| dpad-binary | 1 | 30.0 | 35.0 | 20.0 | 30.00 | 24.00 | 1.250 | 1.250 | 25.00 | 20.00 | 1.250 | 1.250 |');
  const j = lines.indexOf('| method | seed | n | gIoU | cIoU | #Tok | S1 | S2 | SNR (mean of ratios) | SNR (ratio of means) | TS1 | TS2 | TSNR (mean of ratios) | TSNR (ratio of means) |');
  assert.ok(j > i + 4, 'the per-seed table follows the summary');
  assert.is(lines[j + 1], '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  assert.is(lines[j + 2], '| warm-start | - | 200 | 5.0 | 6.0 | 50.0 | 21.00 | 24.00 | 0.875 | 0.875 | 20.00 | 20.00 | 1.000 | 1.000 |');
  assert.is(lines[j + 3], '| baseline | 9 | 200 | 10.0 | 20.0 | 30.0 | 20.00 | 25.00 | 0.800 | 0.800 | 22.00 | 22.00 | 1.000 | 1.000 |');
  assert.is(lines[j + 5], '| dpad-binary | 9 | 199 | 30.0 | 35.0 | 20.0 | 30.00 | 24.00 | 1.250 | 1.250 | 25.00 | 20.00 | 1.250 | 1.250 |');
  // without a warm start there is no warm-start row
  assert.not.ok(ablationMarkdown({ title: 'x', runs }).includes('warm-start'));
});

test('ablationJson: the summary, the warm start and every run with its metric values', () => {
  const j = ablationJson(runs, null);
  assert.is(j.warmStart, null);
  assert.is(j.runs.length, 3);
  assert.equal(j.runs[2].metrics.gIoU, 0.3);
  assert.equal(j.runs[2].metrics.tokens, 20);
  assert.equal(j.summary[0].metrics.S2, { mean: 25, std: 0, n: 2 });
  assert.equal(j.metrics.map(m => m.key), ['gIoU', 'cIoU', 'tokens', 'S1', 'S2', 'SNR', 'SNR_ratio_of_means', 'TS1', 'TS2', 'TSNR', 'TSNR_ratio_of_means']);
});

test('the variants: baseline (Seg-Zero), DPAD binary, DPAD scaled; --variants parses a comma list', () => {
  assert.equal(ABLATION_VARIANT_NAMES, ['baseline', 'dpad-binary', 'dpad-scaled']);
  assert.equal(ABLATION_VARIANTS['dpad-scaled'], { variant: 'dpad', discriminative: 'scaled' });
  assert.equal(parseVariants('dpad-scaled, baseline,dpad-scaled'), ['dpad-scaled', 'baseline']);
  const usage = (raw: string) => {
    try {
      parseVariants(raw);
    } catch (e) {
      assert.instance(e, UsageError);
      return (e as Error).message;
    }
    return 'no error';
  };
  assert.is(usage('dpad-scaeld'), '--variants: unknown variant "dpad-scaeld" (did you mean dpad-scaled?); the variants are baseline, dpad-binary, dpad-scaled');
  assert.is(usage('nope'), '--variants: unknown variant "nope"; the variants are baseline, dpad-binary, dpad-scaled');
  assert.is(usage('baseline,'), '--variants has an empty entry in "baseline," (write a comma list of baseline, dpad-binary, dpad-scaled)');
});

test('npm run ablation -- --variants nope: exit 1 with the message and the usage, before any weights load', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/ablation.ts', '--variants', 'nope', '--weights', '/nonexistent'], { encoding: 'utf8', env: { ...process.env, DPAD_BACKEND: process.env.DPAD_BACKEND ?? 'wasm', DPAD_DEBUG: '' } });
  const out = `${r.stdout}${r.stderr}`;
  assert.is(r.status, 1, out);
  assert.match(out, 'ablation: error: --variants: unknown variant "nope"; the variants are baseline, dpad-binary, dpad-scaled');
  assert.match(out, 'usage: npm run ablation -- [options]');
  const near = spawnSync(process.execPath, ['--import', 'tsx', 'examples/ablation.ts', '--variants', 'baseline,dpad-binray'], { encoding: 'utf8', env: { ...process.env, DPAD_BACKEND: process.env.DPAD_BACKEND ?? 'wasm', DPAD_DEBUG: '' } });
  assert.is(near.status, 1);
  assert.match(`${near.stdout}${near.stderr}`, '--variants: unknown variant "dpad-binray" (did you mean dpad-binary?)');
});

test.run();
