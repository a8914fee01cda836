/**
 * Training curves from the step log (log.jsonl entries):
 *   curves.{svg,png}  small multiples: reward (mean -/+ std and every component), loss (total and
 *                     policy-gradient), KL (to the reference, and PPO's old-vs-new), gradient norm,
 *                     entropy, response length (mean and max);
 *   reward.{svg,png}  the reward panel on its own, larger;
 *   length.{svg,png}  the response length on its own;
 *   distributed.{svg,png}  distributed runs only: queue depth, staleness, rollouts/s per worker and
 *                     the learner's step time.
 * A step logged twice (a resumed run) is drawn once, from its last entry; a value that is missing
 * or not finite (a skipped step's gradient norm, an entropy that was not computed) leaves a gap.
 */
import * as path from 'node:path';
import { gridSvg, lineSvg, writeSvg, type Panel, type Series } from '../util/plot.ts';
import type { StepLog } from './trainer.ts';

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : NaN);

/** one entry per step (the last logged), by step */
export function uniqueSteps(logs: StepLog[]): StepLog[] {
  const byStep = new Map<number, StepLog>();
  for (const l of logs) byStep.set(l.step, l);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** the panels of the training curves (exported for tests) */
export function curvePanels(logs: StepLog[]): Panel[] {
  const ls = uniqueSteps(logs);
  const x = ls.map(l => l.step);
  const col = (f: (l: StepLog) => unknown) => ls.map(l => num(f(l)));
  const comps = [...new Set(ls.flatMap(l => Object.keys(l.reward?.components ?? {})))];
  const mean = col(l => l.reward?.mean);
  const std = col(l => l.reward?.std);
  const reward: Series[] = [
    { name: 'total (mean ± std over rollouts)', x, y: mean, band: { lo: mean.map((m, i) => m - std[i]), hi: mean.map((m, i) => m + std[i]) } },
    ...comps.map(k => ({ name: k, x, y: col(l => (l.reward?.components as Record<string, number> | undefined)?.[k]) })),
  ];
  return [
    { title: 'reward', series: reward, opts: { yLabel: 'reward' } },
    { title: 'loss', series: [{ name: 'total', x, y: col(l => l.loss?.total) }, { name: 'policy gradient', x, y: col(l => l.loss?.pg) }], opts: { yLabel: 'loss' } },
    { title: 'KL', series: [{ name: 'KL to reference', x, y: col(l => l.loss?.kl) }, { name: 'PPO KL (old vs new)', x, y: col(l => l.loss?.ppoKl) }], opts: { yLabel: 'KL' } },
    { title: 'gradient norm', series: [{ name: 'global grad norm', x, y: col(l => l.gradNorm) }], opts: { yLabel: 'L2 norm', yInclude: [0] } },
    { title: 'entropy', series: [{ name: 'token entropy', x, y: col(l => l.loss?.entropy) }], opts: { yLabel: 'nats' } },
    { title: 'response length', series: [{ name: 'mean', x, y: col(l => l.responseLength?.mean) }, { name: 'max', x, y: col(l => l.responseLength?.max) }], opts: { yLabel: 'tokens', yInclude: [0] } },
  ];
}

/** the health panels of a distributed run (empty when no step logged a `distributed` entry) */
export function distributedPanels(logs: StepLog[]): Panel[] {
  const ls = uniqueSteps(logs).filter(l => l.distributed);
  if (!ls.length) return [];
  const x = ls.map(l => l.step);
  const d = (l: StepLog) => l.distributed as { queueDepth?: number | null; waitSeconds?: number; staleness?: { mean: number; max: number }; dropped?: number; workers?: Record<string, { rolloutsPerSecond: number | null }> };
  const col = (f: (l: StepLog) => unknown) => ls.map(l => num(f(l)));
  const workers = [...new Set(ls.flatMap(l => Object.keys(d(l).workers ?? {})))].sort();
  return [
    { title: 'queue depth', series: [{ name: 'prompts pending or in flight', x, y: col(l => d(l).queueDepth) }], opts: { yLabel: 'messages', yInclude: [0] } },
    { title: 'staleness', series: [{ name: 'mean version lag', x, y: col(l => d(l).staleness?.mean) }, { name: 'max version lag', x, y: col(l => d(l).staleness?.max) }, { name: 'groups dropped', x, y: col(l => d(l).dropped) }], opts: { yLabel: 'versions / groups', yInclude: [0] } },
    { title: 'rollouts/s per worker', series: workers.map(w => ({ name: w, x, y: col(l => d(l).workers?.[w]?.rolloutsPerSecond) })), opts: { yLabel: 'rollouts/s', yInclude: [0] } },
    { title: 'learner step time', series: [{ name: 'whole step', x, y: col(l => l.seconds?.total) }, { name: 'waiting for groups', x, y: col(l => d(l).waitSeconds) }], opts: { yLabel: 'seconds', yInclude: [0] } },
  ];
}

/** Write the training curves into `outDir`; returns the PNG names written (none without logs). */
export async function writeTrainingCurves(outDir: string, logs: StepLog[]): Promise<string[]> {
  if (!logs.length) return [];
  const panels = curvePanels(logs);
  await writeSvg(path.join(outDir, 'curves'), gridSvg('training curves', panels, { cols: 2, panelWidth: 480, panelHeight: 320 }));
  const [reward, , , , , length] = panels;
  await writeSvg(path.join(outDir, 'reward'), lineSvg('mean reward per step', reward.series, { ...reward.opts, width: 720, height: 420 }));
  await writeSvg(path.join(outDir, 'length'), lineSvg('response length (tokens)', length.series, length.opts));
  const dist = distributedPanels(logs);
  if (!dist.length) return ['curves.png', 'reward.png', 'length.png'];
  await writeSvg(path.join(outDir, 'distributed'), gridSvg('distributed run: health', dist, { cols: 2, panelWidth: 480, panelHeight: 300 }));
  return ['curves.png', 'reward.png', 'length.png', 'distributed.png'];
}
