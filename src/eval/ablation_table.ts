/**
 * The ablation's variants and its report (examples/ablation.ts): per variant, mean ± std over
 * seeds of the paper's Table 5 metrics (gIoU, cIoU, #Tok, S1, S2, SNR, TS1, TS2, TSNR; SNR and TSNR
 * in both forms), the warm start as a row of its own, and the per-seed table beside it. Pure
 * functions of metric tables, so they are tested without training.
 * std is the sample standard deviation over seeds (n - 1 in the denominator; 0 for one seed).
 */
import type { RewardConfig } from '../rewards/registry.ts';
import { didYouMean, UsageError } from '../util/cli.ts';
import type { MetricTable } from './metrics.ts';

/** the reward settings each variant trains with (over the config's `rewards`) */
export const ABLATION_VARIANTS = {
  /** Seg-Zero's rewards: no caption, no CLIP reward */
  baseline: { variant: 'baseline' },
  /** DPAD, the discriminative reward binary (S1 > S2, the paper's default) */
  'dpad-binary': { variant: 'dpad', discriminative: 'binary' },
  /** DPAD, the discriminative reward scaled */
  'dpad-scaled': { variant: 'dpad', discriminative: 'scaled' },
} as const satisfies Record<string, Partial<RewardConfig>>;

export type AblationVariant = keyof typeof ABLATION_VARIANTS;
export const ABLATION_VARIANT_NAMES = Object.keys(ABLATION_VARIANTS) as AblationVariant[];

/**
 * A comma list of variant names (`--variants`), in the given order, repeats dropped; an unknown
 * name is a UsageError with a did-you-mean.
 */
export function parseVariants(raw: string, flag = '--variants'): AblationVariant[] {
  const out: AblationVariant[] = [];
  for (const part of raw.split(',')) {
    const name = part.trim();
    if (!name) throw new UsageError(`${flag} has an empty entry in ${JSON.stringify(raw)} (write a comma list of ${ABLATION_VARIANT_NAMES.join(', ')})`);
    if (!(name in ABLATION_VARIANTS)) {
      const near = didYouMean(name, ABLATION_VARIANT_NAMES);
      throw new UsageError(`${flag}: unknown variant ${JSON.stringify(name)}${near ? ` (did you mean ${near}?)` : ''}; the variants are ${ABLATION_VARIANT_NAMES.join(', ')}`);
    }
    if (!out.includes(name as AblationVariant)) out.push(name as AblationVariant);
  }
  return out;
}

export interface AblationMetric {
  /** the key in ablation.json (a MetricTable key; `tokens` = tokens.mean) */
  key: string;
  /** the column heading */
  label: string;
  /** display factor (gIoU / cIoU as %) and decimals */
  scale: number;
  digits: number;
  of(t: MetricTable): number;
}

/** the reported metrics, in column order (MetricTable units; S and TS already x100) */
export const ABLATION_METRICS: readonly AblationMetric[] = [
  { key: 'gIoU', label: 'gIoU', scale: 100, digits: 1, of: t => t.gIoU },
  { key: 'cIoU', label: 'cIoU', scale: 100, digits: 1, of: t => t.cIoU },
  { key: 'tokens', label: '#Tok', scale: 1, digits: 1, of: t => t.tokens.mean },
  { key: 'S1', label: 'S1', scale: 1, digits: 2, of: t => t.S1 },
  { key: 'S2', label: 'S2', scale: 1, digits: 2, of: t => t.S2 },
  { key: 'SNR', label: 'SNR (mean of ratios)', scale: 1, digits: 3, of: t => t.SNR },
  { key: 'SNR_ratio_of_means', label: 'SNR (ratio of means)', scale: 1, digits: 3, of: t => t.SNR_ratio_of_means },
  { key: 'TS1', label: 'TS1', scale: 1, digits: 2, of: t => t.TS1 },
  { key: 'TS2', label: 'TS2', scale: 1, digits: 2, of: t => t.TS2 },
  { key: 'TSNR', label: 'TSNR (mean of ratios)', scale: 1, digits: 3, of: t => t.TSNR },
  { key: 'TSNR_ratio_of_means', label: 'TSNR (ratio of means)', scale: 1, digits: 3, of: t => t.TSNR_ratio_of_means },
];

export interface MeanStd {
  mean: number;
  /** sample standard deviation (n - 1); 0 for one value */
  std: number;
  n: number;
}

export function meanStd(xs: readonly number[]): MeanStd {
  const n = xs.length;
  if (n === 0) throw new Error('ablation: mean ± std of no runs');
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const q = xs.reduce((a, x) => a + (x - mean) ** 2, 0);
  return { mean, std: n > 1 ? Math.sqrt(q / (n - 1)) : 0, n };
}

/** one trained-and-evaluated run */
export interface AblationRun {
  variant: string;
  seed: number;
  table: MetricTable;
}

export interface AblationSummaryRow {
  variant: string;
  seeds: number[];
  /** by ABLATION_METRICS key, in MetricTable units */
  metrics: Record<string, MeanStd>;
}

/** the metric values of one table, by ABLATION_METRICS key */
export function metricValues(t: MetricTable): Record<string, number> {
  return Object.fromEntries(ABLATION_METRICS.map(m => [m.key, m.of(t)]));
}

/** mean ± std over seeds per variant, the variants in the order they first appear */
export function summarizeAblation(runs: readonly AblationRun[]): AblationSummaryRow[] {
  const groups = new Map<string, AblationRun[]>();
  for (const r of runs) {
    if (!groups.has(r.variant)) groups.set(r.variant, []);
    const g = groups.get(r.variant)!;
    if (g.some(x => x.seed === r.seed)) throw new Error(`ablation: variant ${r.variant} has seed ${r.seed} twice`);
    g.push(r);
  }
  return [...groups].map(([variant, rs]) => ({
    variant,
    seeds: rs.map(r => r.seed),
    metrics: Object.fromEntries(ABLATION_METRICS.map(m => [m.key, meanStd(rs.map(r => m.of(r.table)))])),
  }));
}

const cell = (m: AblationMetric, x: number) => (x * m.scale).toFixed(m.digits);

/**
 * table.md: the summary (mean ± std over seeds; the warm start and one-seed variants without ±) and
 * the per-seed table. `title` is the heading; `notes` lines go under it.
 */
export function ablationMarkdown(opts: { title: string; notes?: readonly string[]; warmStart?: MetricTable | null; runs: readonly AblationRun[] }): string {
  const labels = ABLATION_METRICS.map(m => m.label);
  const sep = (k: number) => `|${'---|'.repeat(k)}`;
  const lines = [`# ${opts.title}`, ''];
  if (opts.notes?.length) lines.push(...opts.notes, '');
  lines.push(
    'gIoU / cIoU in %, S and TS x100 (cosine), #Tok = think tokens (mean). Summary cells: mean ± std over seeds (sample std, n - 1).', '',
    '## Mean ± std over seeds', '',
    `| method | seeds | ${labels.join(' | ')} |`, sep(labels.length + 2),
  );
  if (opts.warmStart) lines.push(`| warm-start | - | ${ABLATION_METRICS.map(m => cell(m, m.of(opts.warmStart!))).join(' | ')} |`);
  for (const r of summarizeAblation(opts.runs)) {
    // one seed has no spread to show: its cells are the value alone
    lines.push(`| ${r.variant} | ${r.seeds.length} | ${ABLATION_METRICS.map(m => (r.metrics[m.key].n > 1 ? `${cell(m, r.metrics[m.key].mean)} ± ${cell(m, r.metrics[m.key].std)}` : cell(m, r.metrics[m.key].mean))).join(' | ')} |`);
  }
  lines.push('', '## Per seed', '', `| method | seed | n | ${labels.join(' | ')} |`, sep(labels.length + 3));
  if (opts.warmStart) lines.push(`| warm-start | - | ${opts.warmStart.n} | ${ABLATION_METRICS.map(m => cell(m, m.of(opts.warmStart!))).join(' | ')} |`);
  for (const r of opts.runs) lines.push(`| ${r.variant} | ${r.seed} | ${r.table.n} | ${ABLATION_METRICS.map(m => cell(m, m.of(r.table))).join(' | ')} |`);
  lines.push('');
  return lines.join('\n');
}

/** ablation.json's figures: the summary, the warm start and every run (metric values and the full table) */
export function ablationJson(runs: readonly AblationRun[], warmStart: MetricTable | null = null) {
  return {
    metrics: ABLATION_METRICS.map(m => ({ key: m.key, label: m.label })),
    std: 'sample standard deviation over seeds (n - 1; 0 for one seed)',
    warmStart: warmStart ? { metrics: metricValues(warmStart), table: warmStart } : null,
    summary: summarizeAblation(runs),
    runs: runs.map(r => ({ variant: r.variant, seed: r.seed, metrics: metricValues(r.table), table: r.table })),
  };
}
