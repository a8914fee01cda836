import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { barSvg, formatTick, gridSvg, lineSvg, niceTicks, seriesStyle, textWidth, wrapText, type Series } from '../src/util/plot.ts';
import { curvePanels, distributedPanels, uniqueSteps, writeTrainingCurves } from '../src/rl/curves.ts';
import { evaluationFigures, tokenBands } from '../src/eval/figures.ts';
import type { StepLog } from '../src/rl/trainer.ts';

const texts = (svg: string, cls: string) => [...svg.matchAll(new RegExp(`class="${cls}"[^>]*>([^<]*)<`, 'g'))].map(m => m[1]);

test('niceTicks: round steps (1, 2, 2.5, 5 x 10^k) that cover the range; labels print exactly', () => {
  assert.equal(niceTicks(0.21, 2.08), { lo: 0, hi: 2.5, step: 0.5, ticks: [0, 0.5, 1, 1.5, 2, 2.5] });
  assert.equal(niceTicks(1, 37, 5, true).ticks, [0, 5, 10, 15, 20, 25, 30, 35, 40]);
  assert.equal(niceTicks(1, 37, 4, true).ticks, [0, 10, 20, 30, 40]);
  assert.equal(niceTicks(-0.013, 0.0081).step, 0.005);
  assert.equal(niceTicks(3, 3).ticks.length > 1, true, 'a flat series still gets a range');
  assert.equal(niceTicks(0, 3, 5, true).step, 1, 'integer axes never get fractional steps');
  assert.is(formatTick(0.1 + 0.2, 0.1), '0.3');
  assert.is(formatTick(-1e-17, 0.5), '0.0');
  assert.is(formatTick(2.5, 0.25), '2.50');
  assert.is(formatTick(1500, 500), '1500');
});

test('lineSvg: x and y tick labels at round values, axis labels, a legend entry and a distinct colour per series', () => {
  const x = Array.from({ length: 37 }, (_, i) => i + 1);
  const series: Series[] = Array.from({ length: 7 }, (_, k) => ({ name: `s${k}`, x, y: x.map(i => 0.21 + (k * i) / 20) }));
  const svg = lineSvg('reward', series, { yLabel: 'reward' });
  assert.equal(texts(svg, 'xtick'), ['5', '10', '15', '20', '25', '30', '35']);
  const yt = texts(svg, 'ytick').map(Number);
  const step = yt[1] - yt[0];
  assert.ok(yt.length >= 3 && yt.every((v, i) => Math.abs(v - yt[0] - i * step) < 1e-9), `evenly spaced y ticks ${yt}`);
  assert.ok([1, 2, 2.5, 5].some(f => Math.abs(step / 10 ** Math.floor(Math.log10(step)) - f) < 1e-9), `round y step ${step}`);
  assert.ok(yt[0] <= 0.21 && yt[yt.length - 1] >= 0.21 + (6 * 37) / 20, 'ticks cover the data');
  assert.equal(texts(svg, 'xlabel'), ['step']);
  assert.equal(texts(svg, 'ylabel'), ['reward']);
  for (const s of series) assert.match(svg, `>${s.name}</text>`);
  const strokes = [...svg.matchAll(/<polyline class="series" fill="none" stroke="([^"]+)"/g)].map(m => m[1]);
  assert.is(strokes.length, 7);
  assert.is(new Set(strokes).size, 7, 'seven series, seven colours');
  const styles = Array.from({ length: 25 }, (_, i) => JSON.stringify(seriesStyle(i)));
  assert.is(new Set(styles).size, 25, 'past the palette, colour + dash stay unique');
});

test('lineSvg: a missing value breaks the line instead of joining across it', () => {
  const svg = lineSvg('t', [{ name: 'a', x: [1, 2, 3, 4, 5], y: [1, 2, NaN, 4, 5] }]);
  assert.is([...svg.matchAll(/<polyline class="series"/g)].length, 2);
  assert.not.match(svg, /NaN/);
});

test('barSvg: one bar per finite value, error bars of mean -/+ std, category labels and n notes, y axis from 0', () => {
  const svg = barSvg('tokens', ['all', 'kind: phrase', 'kind: sentence', 'empty'], [{ name: 'mean', values: [80, 60, 100, NaN], errors: [20, 0, 30, NaN] }], { notes: ['n = 3', 'n = 1', 'n = 2', 'n = 0'] });
  assert.is([...svg.matchAll(/class="bar"/g)].length, 3);
  assert.is([...svg.matchAll(/class="errorbar"/g)].length, 2, 'no whisker for std 0 or a missing group');
  assert.ok(texts(svg, 'xtick').join(' ').includes('all'));
  for (const n of ['n = 3', 'n = 1', 'n = 2', 'n = 0']) assert.match(svg, `>${n}<`);
  const yt = texts(svg, 'ytick').map(Number);
  assert.is(yt[0], 0);
  assert.ok(yt[yt.length - 1] >= 130, 'the axis holds the top whisker (100 + 30)');
  assert.match(svg, /error bars: ± 1 std/);
  // the whisker of 'all' spans 60..100 on the axis
  const ph = /<rect class="bar" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/.exec(svg)!;
  const [top, h] = [Number(ph[1]), Number(ph[2])];
  const whisk = /class="errorbar"[^>]*><line x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)" y2="([\d.]+)"/.exec(svg)!;
  const pxPerUnit = h / 80;
  assert.ok(Math.abs(Number(whisk[1]) - (top + 20 * pxPerUnit)) < 0.2 && Math.abs(Number(whisk[2]) - (top - 20 * pxPerUnit)) < 0.2, 'whisker = mean -/+ std');
});

test('wrapText: lines fit the width, no word is lost, a word longer than a line is broken', () => {
  const s = 'When a person wants to sit down after a long walk, which object would they use? ' + 'x'.repeat(90);
  const lines = wrapText(s, 200, 12);
  assert.ok(lines.length > 3);
  for (const l of lines) assert.ok(textWidth(l, 12) <= 200, l);
  assert.is(lines.join(' ').replace(/x /g, 'x'), s);
  assert.equal(wrapText('a\nb', 500, 12), ['a', 'b']);
  assert.ok(textWidth('MMMM', 10) > textWidth('iiii', 10) * 2);
});

const log = (step: number, reward: number, extra: Partial<StepLog> = {}): StepLog => ({
  step, epoch: 0,
  reward: { mean: reward, std: 0.1, components: { iou: reward / 2, thinking_format: 1 } },
  advantage: { mean: 0, std: 1, min: -1, max: 1 },
  loss: { total: 0.01 * step, pg: 0.005 * step, kl: 0.001, entropy: 1.5, clipFrac: 0, ppoKl: 0 },
  gradNorm: 2, skipped: null, responseLength: { mean: 100, max: 150 }, tokensPerSecond: 10,
  seconds: { rollout: 1, reward: 0, forwardBackward: 1, optimizer: 0, total: 2 }, memory: { numTensors: 1, numBytes: 1 },
  ...extra,
});

test('a distributed run also plots its health: queue depth, staleness, rollouts/s per worker, learner step time', async () => {
  const d = (q: number, lag: number, a: number, b: number) => ({ distributed: { queueDepth: q, waitSeconds: 1.5, staleness: { mean: lag, max: lag }, dropped: 0, workers: { w1: { rolloutsPerSecond: a }, w2: { rolloutsPerSecond: b } } } });
  const logs = [log(1, 0.5, d(4, 0, 2.1, 2.4)), log(2, 0.6, d(2, 1, 2.2, 2.5))];
  const panels = distributedPanels(logs);
  assert.equal(panels.map(p => p.title), ['queue depth', 'staleness', 'rollouts/s per worker', 'learner step time']);
  assert.equal(panels[2].series.map(s => [s.name, s.y]), [['w1', [2.1, 2.2]], ['w2', [2.4, 2.5]]]);
  assert.equal(distributedPanels([log(1, 0.5)]), []);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'curves-dist-'));
  assert.equal(await writeTrainingCurves(dir, logs), ['curves.png', 'reward.png', 'length.png', 'distributed.png']);
  assert.is((await sharp(path.join(dir, 'distributed.png')).metadata()).format, 'png');
});

test('training curves: reward (mean and components), loss, KL, gradient norm, entropy and response length; a repeated step is drawn once', async () => {
  const logs = [log(1, 0.5), log(2, 0.6), log(3, 0.7), log(2, 0.65), log(3, 0.75), log(4, 0.8, { gradNorm: NaN, loss: { total: 1, pg: 1, kl: 0, entropy: null, clipFrac: 0, ppoKl: 0 } })];
  assert.equal(uniqueSteps(logs).map(l => [l.step, l.reward.mean]), [[1, 0.5], [2, 0.65], [3, 0.75], [4, 0.8]]);
  const panels = curvePanels(logs);
  assert.equal(panels.map(p => p.title), ['reward', 'loss', 'KL', 'gradient norm', 'entropy', 'response length']);
  assert.equal(panels[0].series.map(s => s.name), ['total (mean ± std over rollouts)', 'iou', 'thinking_format']);
  assert.equal(panels[0].series[0].x, [1, 2, 3, 4]);
  assert.ok(panels[0].series[0].band, 'reward std band');
  assert.ok(Number.isNaN(panels[3].series[0].y[3]) && Number.isNaN(panels[4].series[0].y[3]), 'missing values are gaps');
  const svg = gridSvg('training curves', panels);
  for (const t of ['reward', 'loss', 'KL', 'gradient norm', 'entropy', 'response length']) assert.match(svg, `>${t}</text>`);
  assert.is(new Set([...svg.matchAll(/clipPath id="([^"]+)"/g)].map(m => m[1])).size, 6, 'one clip region per panel');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'curves-'));
  assert.equal(await writeTrainingCurves(dir, logs), ['curves.png', 'reward.png', 'length.png']);
  for (const f of ['curves', 'reward', 'length']) {
    const meta = await sharp(path.join(dir, `${f}.png`)).metadata();
    assert.is(meta.format, 'png');
    assert.ok(fs.readFileSync(path.join(dir, `${f}.svg`), 'utf8').includes('class="xtick"'), f);
  }
  const grid = await sharp(path.join(dir, 'curves.png')).metadata();
  assert.equal([grid.width, grid.height], [960, 34 + 3 * 320], 'two columns, three rows');
  assert.equal(await writeTrainingCurves(dir, []), []);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('token figures: the grouped figure is bars with error bars (not a line), one per group, named by stratum', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'figs-'));
  const recs = [{ tokens: 10, labels: { kind: 'phrase' } }, { tokens: 30, labels: { kind: 'sentence' } }, { tokens: 50, labels: { kind: 'sentence' } }, { tokens: null, labels: { kind: 'phrase' } }];
  assert.equal(await evaluationFigures(dir, 'run', recs), ['tokens_scatter.png', 'tokens_by_group.png']);
  const svg = fs.readFileSync(path.join(dir, 'tokens_by_group.svg'), 'utf8');
  assert.not.match(svg, /<polyline/);
  assert.is([...svg.matchAll(/class="bar"/g)].length, 3);
  assert.is([...svg.matchAll(/class="errorbar"/g)].length, 2, "'all' and 'sentence' vary; 'phrase' has one value");
  for (const t of ['all', 'kind: phrase', 'kind: sentence', 'n = 3', 'n = 1', 'n = 2']) assert.match(svg, `>${t}<`);
  await tokenBands(path.join(dir, 'by_dataset'), [{ name: 'a', tokens: [1, 2, 3] }, { name: 'b', tokens: [] }]);
  assert.is([...fs.readFileSync(path.join(dir, 'by_dataset.svg'), 'utf8').matchAll(/class="bar"/g)].length, 1, 'an empty dataset gets no bar');
  assert.is((await sharp(path.join(dir, 'by_dataset.png')).metadata()).format, 'png');
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
