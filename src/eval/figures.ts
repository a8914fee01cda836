/**
 * The paper's token figures for an evaluation: Figure 4, the think-token count of every sample
 * (a scatter), and Figure 5, the mean think-token count per dataset (or per stratum of one
 * dataset) as bars with mean -/+ std error bars and each group's n. PNG (and SVG) through the
 * project's plotter.
 */
import * as path from 'node:path';
import { writeBars, writePlot, type Series } from '../util/plot.ts';
import { summarize } from './metrics.ts';

export interface TokenGroup {
  name: string;
  tokens: number[];
}

/** Figure 4: tokens per sample, one series per run (e.g. DPAD vs a baseline) */
export async function tokenScatter(base: string, runs: TokenGroup[], title = 'Think tokens per sample'): Promise<void> {
  const series: Series[] = runs.map(r => ({ name: `${r.name} (mean ${summarize(r.tokens).mean.toFixed(1)})`, x: r.tokens.map((_, i) => i), y: r.tokens, style: 'points' }));
  await writePlot(base, title, series, { xLabel: 'sample', yLabel: 'think tokens' });
}

/** Figure 5: one bar per group (datasets or strata): the mean think tokens, error bars -/+ std (population), n under each */
export async function tokenBands(base: string, groups: TokenGroup[], title = 'Think tokens: mean ± std', xLabel = 'group'): Promise<void> {
  const st = groups.map(g => summarize(g.tokens));
  await writeBars(base, title, groups.map(g => g.name), [{ name: 'mean think tokens', values: st.map(s => (s.n ? s.mean : NaN)), errors: st.map(s => (s.n ? s.std : NaN)) }], {
    yLabel: 'think tokens', xLabel, notes: st.map(s => `n = ${s.n}`), errorLabel: 'error bars: ± 1 std',
  });
}

/** Both figures of one evaluation folder: tokens_scatter.png and tokens_by_group.png (groups: 'all' and every stratum). */
export async function evaluationFigures(dir: string, name: string, records: { tokens?: number | null; labels?: Record<string, string> }[]): Promise<string[]> {
  const all = records.flatMap(r => (r.tokens != null ? [r.tokens] : []));
  await tokenScatter(path.join(dir, 'tokens_scatter'), [{ name, tokens: all }]);
  const groups: TokenGroup[] = [{ name: 'all', tokens: all }];
  const keys = [...new Set(records.flatMap(r => Object.keys(r.labels ?? {})))].sort();
  for (const k of keys) {
    const vals = [...new Set(records.map(r => r.labels?.[k]).filter((v): v is string => v !== undefined))].sort();
    for (const v of vals) groups.push({ name: `${k}: ${v}`, tokens: records.flatMap(r => (r.labels?.[k] === v && r.tokens != null ? [r.tokens] : [])) });
  }
  await tokenBands(path.join(dir, 'tokens_by_group'), groups);
  return ['tokens_scatter.png', 'tokens_by_group.png'];
}
