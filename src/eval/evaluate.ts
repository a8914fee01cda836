/**
 * Evaluation of the segment pipeline over a list of samples, as the released evaluation records
 * them (REFERENCE.md 8.2): per-sample records (ids, query, output text, think, caption, box,
 * points, I, U, counted, tokens, S1, S2, TS1, TS2) appended to results.jsonl as they complete (a
 * killed run resumes without counting anything twice), then metrics.json and report.md with the
 * paper-style tables, stratified when labels exist.
 * - an unparsable output records I = 0, U = |gt| and think `[Error]... {python error}`;
 * - a parsed output whose prediction and ground truth are both empty (U = 0) is dropped: kept in
 *   results.jsonl with `counted: false` (so a resumed run skips it) and left out of every metric;
 * - #Tok counts as get_tokens.py does (option `thinkTokens`, see tokens.ts).
 * Samples are generated `batchSize` at a time (Segmenter.segmentBatch, default 8: a batch decodes
 * at nearly the cost of one sample) and recorded in input order, exactly as batch 1 records them.
 * Provenance: the first line of results.jsonl is `{"provenance": {...}}` (EvalProvenance: the
 * weights fingerprint, the data spec and the options that change results), also in metrics.json.
 * A rerun into a folder whose results were made otherwise refuses, naming the difference, unless
 * `fresh`. The record schema is documented in docs/outputs.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import type { EvalSample } from '../data/types.ts';
import type { ClipScorer } from '../models/clip/scorer.ts';
import { weightsFingerprint, type WeightsFingerprint } from '../pipeline/bundle.ts';
import { boxToView, frameOf, toView } from '../pipeline/frame.ts';
import { DEFAULT_MAX_NEW_TOKENS, type Segmenter, type SegmentResult } from '../pipeline/segment.ts';
import { Progress } from '../util/progress.ts';
import { evaluationFigures } from './figures.ts';
import { WorstSamples, type WorstEntry } from './worst.ts';
import { iouOf, METRIC_DEFINITIONS, sampleOutcome, stratifiedTables, type MetricTable, type SampleRecord } from './metrics.ts';
import { countedThink, recordedThink, THINK_TOKEN_COUNTINGS, tokenCountStats, type ThinkTokenCounting } from './tokens.ts';

export type { EvalSample } from '../data/types.ts';

/** evaluate's default batchSize: prompts generated together */
export const DEFAULT_EVAL_BATCH = 8;

/**
 * One line of results.jsonl (docs/outputs.md). Frames: `bbox` and `points` are in IMAGE pixels
 * (the policy's answer scaled back from its view, see SegmentResult); `text` is the raw output,
 * whose JSON is in the policy's view frame (`view` x `view`, 840 for DPAD).
 */
export interface EvalRecord extends SampleRecord {
  id: string;
  query: string;
  text: string;
  /** the think evaluation.py records: first <think>([^<]+)</think> or '', '[Error]... {e}' for a parse failure */
  think: string | null;
  caption: string | null;
  /** [x1, y1, x2, y2] in image pixels, null when the answer does not parse */
  bbox: number[] | null;
  /** [[x, y], [x, y]] in image pixels, null when the answer does not parse */
  points: number[][] | null;
  /** the square view (pixels) the policy saw and answered in: `text`'s JSON is in this frame */
  view?: number;
  /** every token the policy generated (stop token included): SegmentResult.generatedTokens */
  generatedTokens?: number;
  /** tokens of the output's first <think>([^<]+)</think>, 0 without one: SegmentResult.thinkTokens */
  thinkTokens?: number;
  reason?: string;
}

/** What made a results folder: compared on every rerun (see evaluate). */
export interface EvalProvenance {
  version: 1;
  weights: WeightsFingerprint & { dir: string | null };
  /** the data spec as the caller gave it (e.g. 'world:test:50' or { spec, split, ... }); null when not given */
  data: unknown;
  options: { maxNewTokens: number; thinkTokens: ThinkTokenCounting; variant: 'dpad' | 'baseline'; scorer: boolean };
}

function gtBox(mask: Uint8Array, w: number, h: number): [number, number, number, number] | null {
  let x1 = w, y1 = h, x2 = -1, y2 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) { if (x < x1) x1 = x; if (x > x2) x2 = x; if (y < y1) y1 = y; if (y > y2) y2 = y; }
  return x2 < 0 ? null : [x1, y1, x2 + 1, y2 + 1];
}

/** results.jsonl: its provenance line (null when absent) and its complete records (a torn line is dropped). */
export function readResultsFile(file: string): { provenance: EvalProvenance | null; records: EvalRecord[] } {
  const records: EvalRecord[] = [];
  let provenance: EvalProvenance | null = null;
  if (!fs.existsSync(file)) return { provenance, records };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue; // a line cut by a kill mid-write: that sample is evaluated again
    }
    if (!v || typeof v !== 'object') continue;
    const o = v as Record<string, unknown>;
    if (typeof o.id === 'string') records.push(o as unknown as EvalRecord);
    else if (o.provenance && typeof o.provenance === 'object' && provenance === null) provenance = o.provenance as EvalProvenance;
  }
  return { provenance, records };
}

export function readResults(file: string): EvalRecord[] {
  return readResultsFile(file).records;
}

/** JSON with sorted keys (a data spec compares equal whatever its key order) */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * Why `before` (the folder's) and `now` (this run's) provenance cannot share a results file, or
 * null when they can. `where` names the folder.
 */
export function provenanceMismatch(where: string, before: EvalProvenance | null, now: EvalProvenance, count: number): string | null {
  const fresh = 'use --fresh to start over';
  if (!before) return `${where}: results.jsonl has no provenance record (an older version wrote it), so the weights and data of its ${count} results are unknown; ${fresh}`;
  const bw = before.weights ?? ({} as EvalProvenance['weights']);
  if (bw.fingerprint !== now.weights.fingerprint) {
    const label = (w: EvalProvenance['weights']) => `${String(w.fingerprint).slice(0, 12)} (${w.dir ?? 'weights in memory'})`;
    const parts = (['policy', 'sam2', 'clip'] as const).filter(k => bw[k] !== now.weights[k]);
    return `${where}: results.jsonl was made with weights ${label(bw)}, this run uses ${label(now.weights)}${parts.length ? ` (${parts.join(', ')} ${parts.length > 1 ? 'differ' : 'differs'})` : ''}; ${fresh}`;
  }
  if (stable(before.data ?? null) !== stable(now.data)) return `${where}: results.jsonl was made with data ${stable(before.data ?? null)}, this run uses ${stable(now.data)}; ${fresh}`;
  for (const k of Object.keys(now.options) as (keyof EvalProvenance['options'])[]) {
    const a = before.options?.[k];
    if (stable(a ?? null) !== stable(now.options[k])) return `${where}: results.jsonl was made with ${k} ${stable(a ?? null)}, this run uses ${stable(now.options[k])}; ${fresh}`;
  }
  return null;
}

export interface EvaluateOptions {
  outDir: string;
  scorer?: ClipScorer | null;
  maxNewTokens?: number;
  name?: string;
  /** overlays of the N lowest-IoU samples in <outDir>/worst (default 8; 0 for none) */
  worst?: number;
  /** tokens_scatter.png (Figure 4) and tokens_by_group.png (Figure 5); default true */
  figures?: boolean;
  /**
   * discard an earlier run's results in outDir instead of resuming it; without it, a folder made
   * with other weights, data or options is refused (the CLI's --fresh)
   */
  fresh?: boolean;
  /** the data spec, recorded and compared on resume (e.g. the CLI's --data with its options) */
  data?: unknown;
  /** the weights' fingerprint when already computed (default: weightsFingerprint of the segmenter's models and the scorer) */
  fingerprint?: WeightsFingerprint;
  /** the weights directory, recorded as a label (default: the Segmenter's `weightsDir`) */
  weightsDir?: string | null;
  /** the prompt / answer format: 'dpad' (default) or 'baseline' (Seg-Zero, no caption) */
  variant?: 'dpad' | 'baseline';
  /**
   * #Tok counting: 'released' (default, get_tokens.py: the recorded think, error strings of
   * unparsable outputs included) or 'response' (the output's own think text only)
   */
  thinkTokens?: ThinkTokenCounting;
  /**
   * samples generated together (Segmenter.segmentBatch; default 8). The records equal batch 1's,
   * so it is not provenance: a folder made with one batch size resumes with another. A crash
   * mid-batch loses at most that batch.
   */
  batchSize?: number;
}

/** metrics.json: the tables, what each key means, and get_tokens.py's statistics. */
export function metricsJson(tables: ReturnType<typeof stratifiedTables>, records: readonly EvalRecord[], counting: ThinkTokenCounting = 'released', provenance: EvalProvenance | null = null) {
  const counts = records.flatMap(r => (r.counted !== false && typeof r.tokens === 'number' ? [r.tokens] : []));
  return {
    ...(provenance ? { provenance } : {}),
    ...tables,
    think_tokens: { counting, definition: THINK_TOKEN_COUNTINGS[counting], ...(tokenCountStats(counts) ?? { total_think_blocks: 0 }) },
    definitions: METRIC_DEFINITIONS,
  };
}

export async function evaluate(segmenter: Segmenter, samples: AsyncIterable<EvalSample> | Iterable<EvalSample>, total: number, opts: EvaluateOptions): Promise<{ records: EvalRecord[]; tables: ReturnType<typeof stratifiedTables> }> {
  const resultsFile = path.join(opts.outDir, 'results.jsonl');
  const counting = opts.thinkTokens ?? 'released';
  const batchSize = opts.batchSize ?? DEFAULT_EVAL_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`evaluate: batchSize has to be a positive integer, but is ${batchSize}`);
  const provenance: EvalProvenance = {
    version: 1,
    weights: { ...(opts.fingerprint ?? weightsFingerprint(segmenter.policy, segmenter.sam, opts.scorer ?? null)), dir: opts.weightsDir ?? segmenter.weightsDir ?? null },
    data: opts.data ?? null,
    options: { maxNewTokens: opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS, thinkTokens: counting, variant: opts.variant ?? 'dpad', scorer: !!opts.scorer },
  };
  if (opts.fresh) {
    fs.rmSync(resultsFile, { force: true });
    fs.rmSync(path.join(opts.outDir, 'worst'), { recursive: true, force: true });
  }
  const before = readResultsFile(resultsFile);
  const why = before.records.length ? provenanceMismatch(opts.outDir, before.provenance, provenance, before.records.length) : null;
  if (why) throw new Error(why);
  fs.mkdirSync(opts.outDir, { recursive: true });
  const done = new Map(before.records.map(r => [r.id, r]));
  // rewrite the file: the provenance line, then the complete records only (a torn last line cannot stay)
  writeFileAtomic(resultsFile, [{ provenance }, ...done.values()].map(r => JSON.stringify(r) + '\n').join(''));
  const bar = new Progress(opts.name ?? 'eval', total);
  bar.tick(done.size);
  const worst = new WorstSamples(opts.outDir, opts.worst ?? 8, [...done.values()].filter(r => r.counted !== false).map(r => ({ id: r.id, query: r.query, iou: iouOf(r) })));
  const v = segmenter.policy.viewSize;
  const encode = (t: string) => segmenter.policy.tokenizer.encode(t);
  const segOpts = { maxNewTokens: provenance.options.maxNewTokens, variant: provenance.options.variant };
  /** one sample's record, appended and counted as it completes */
  const record = async (s: EvalSample, r: SegmentResult) => {
    // a parse failure has no mask: I = 0, U = |gt|; a parsed sample with U = 0 is dropped
    const { i, u, counted } = sampleOutcome(r.parseError === undefined ? r.mask : null, s.mask);
    const think = recordedThink(r.text, r.parseError);
    const tokText = countedThink(r.text, r.parseError, counting);
    let s1: number | null = null, s2: number | null = null, ts1: number | null = null, ts2: number | null = null;
    const box = gtBox(s.mask, s.image.width, s.image.height);
    if (opts.scorer && box && counted) {
      // ROI = the GT-box crop and AOI = the whole image, both of the view the policy saw
      const view = r.viewImage ?? toView(s.image, v);
      const vb = boxToView(box, frameOf(s.image, v));
      const texts = [r.caption ?? '', r.think ?? ''];
      const sc = await opts.scorer.scores(view, vb, texts, { truncate: true });
      if (r.caption !== null && sc[0]) [s1, s2] = [sc[0].s1, sc[0].s2];
      if (r.think !== null && sc[1]) [ts1, ts2] = [sc[1].s1, sc[1].s2];
    }
    const rec: EvalRecord = {
      id: s.id, query: s.query, text: r.text, think, caption: r.caption, bbox: r.bbox, points: r.points, view: r.view,
      i, u, counted, tokens: counted && tokText ? encode(tokText).length : null, generatedTokens: r.generatedTokens, thinkTokens: r.thinkTokens, s1, s2, ts1, ts2, labels: s.labels, ...(r.reason ? { reason: r.reason } : {}),
    };
    fs.appendFileSync(resultsFile, JSON.stringify(rec) + '\n');
    done.set(s.id, rec);
    if (counted) await worst.add({ id: s.id, query: s.query, iou: iouOf(rec) }, s.image, { mask: r.mask ?? null, bbox: r.bbox, points: r.points, caption: r.caption }, s.mask);
    bar.tick(1);
  };
  /** one segmentBatch over up to batchSize samples, then their records in input order */
  const runBatch = async (batch: EvalSample[]) => {
    let results: SegmentResult[];
    if (typeof segmenter.segmentBatch === 'function') {
      results = await segmenter.segmentBatch(batch.map(s => ({ image: s.image, query: s.query })), { ...segOpts, batchSize });
    } else {
      // a stand-in with segment only (test stubs): one sample at a time
      results = [];
      for (const s of batch) results.push(await segmenter.segment(s.image, s.query, segOpts));
    }
    for (let k = 0; k < batch.length; k++) await record(batch[k], results[k]);
  };
  let pending: EvalSample[] = [];
  const queued = new Set<string>();
  try {
    for await (const s of samples) {
      if (done.has(s.id) || queued.has(s.id)) continue;
      pending.push(s);
      queued.add(s.id);
      if (pending.length < batchSize) continue;
      const batch = pending;
      pending = [];
      await runBatch(batch);
    }
  } catch (e) {
    // the samples' source failed (the batch in flight, if any, failed with pending empty):
    // the samples already read are still evaluated, then the source's error is reported
    if (pending.length) await runBatch(pending).catch(() => undefined);
    throw e;
  }
  if (pending.length) await runBatch(pending);
  const records = [...done.values()];
  const tables = stratifiedTables(records);
  writeJsonAtomic(path.join(opts.outDir, 'metrics.json'), metricsJson(tables, records, counting, provenance));
  const worstList = worst.writeIndex();
  const figures = opts.figures ?? true ? await evaluationFigures(opts.outDir, opts.name ?? 'evaluation', records) : [];
  writeFileAtomic(path.join(opts.outDir, 'report.md'), report(opts.name ?? 'evaluation', tables, records, { figures, worst: worstList }));
  return { records, tables };
}

const f1 = (x: number) => (x * 100).toFixed(1);
const f2 = (x: number) => x.toFixed(2);

function row(name: string, t: MetricTable): string {
  const r3 = (x: number) => x.toFixed(3);
  return `| ${name} | ${t.n} | ${f1(t.gIoU)} | ${f1(t.cIoU)} | ${t.tokens.mean.toFixed(1)} | ${f2(t.S1)} | ${f2(t.S2)} | ${r3(t.SNR)} | ${r3(t.SNR_ratio_of_means)} | ${f2(t.TS1)} | ${f2(t.TS2)} | ${r3(t.TSNR)} | ${r3(t.TSNR_ratio_of_means)} |`;
}

export function report(name: string, tables: ReturnType<typeof stratifiedTables>, records: EvalRecord[], extra: { figures?: string[]; worst?: WorstEntry[] } = {}): string {
  const head = '| split | n | gIoU | cIoU | #Tok | S1 | S2 | SNR (mean of ratios) | SNR (ratio of means) | TS1 | TS2 | TSNR (mean of ratios) | TSNR (ratio of means) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  const lines = [
    `# ${name}`, '',
    'gIoU / cIoU in %, S and TS x100 (cosine). SNR (mean of ratios) = mean over samples of S1_i / S2_i; SNR (ratio of means) = mean S1 / mean S2; TSNR likewise. #Tok = think tokens (mean).', '',
    head, row('all', tables.all),
  ];
  for (const [key, groups] of Object.entries(tables.strata)) for (const [v, t] of Object.entries(groups)) lines.push(row(`${key}: ${v}`, t));
  const failed = records.filter(r => r.reason).length;
  const dropped = records.filter(r => r.counted === false).length;
  const tk = tables.all.tokens;
  lines.push('', `Think tokens: mean ${tk.mean.toFixed(1)}, std ${tk.std.toFixed(1)}, median ${tk.median}, min ${tk.min}, max ${tk.max}.`, `Responses without a usable answer: ${failed} of ${records.length}.`, `Dropped (parsed, prediction and ground truth both empty, as the released evaluation drops them): ${dropped}.`, '');
  if (extra.figures?.length) lines.push('## Think tokens', '', ...extra.figures.map(f => `![${f}](${f})`), '');
  if (extra.worst?.length) {
    lines.push(`## The ${extra.worst.length} worst samples`, '', '| id | IoU (%) | query |', '|---|---|---|');
    for (const w of extra.worst) lines.push(`| [${w.id}](worst/index.md) | ${(w.iou * 100).toFixed(1)} | ${w.query.replace(/\|/g, '\\|')} |`);
    lines.push('');
  }
  return lines.join('\n');
}
