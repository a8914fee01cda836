/**
 * npm run eval -- --data <spec> [--data <spec> ...] [--weights weights/demo] [--out out/eval] [--batch 8]
 *   <spec>: world:<train|val|test>[:N] | a Seg-Zero .parquet | a ReasonSeg folder | a refer folder
 *   a refer folder (refs(<split-by>).p + instances.json) also takes --images <COCO train2014> [--split val] [--split-by umd]
 * Resumable: a killed evaluation continues where it stopped, with any --batch (the results do not
 * depend on it). Per dataset: results.jsonl, metrics.json, report.md, tokens_scatter.png
 * (Figure 4), tokens_by_group.png, worst/ overlays; with several datasets, one folder each under
 * --out and tokens_by_dataset.png (Figure 5).
 */
import * as path from 'node:path';
import { DEFAULT_WEIGHTS, evaluate, initBackend, loadWeights, openDataset, runCli, tokenBands, weightsFingerprint, writeJsonAtomic, type Skipped } from '../src/index.ts';

const SPEC = {
  name: 'npm run eval --',
  summary: 'Evaluate a weights directory on one or more datasets (resumable): gIoU, cIoU, #Tok, S1/S2/SNR, TS1/TS2/TSNR, figures and worst-sample overlays.',
  options: {
    data: { type: 'list', default: ['world:test:50'], placeholder: '<spec>', help: "world:<train|val|test>[:N], a Seg-Zero .parquet, a ReasonSeg folder, or a refer folder" },
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/, sam2/ and (for S1/S2) clip/' },
    out: { type: 'string', default: 'out/eval', placeholder: '<dir>', help: 'the output folder (one subfolder per dataset when several)' },
    'max-new-tokens': { type: 'int', default: 256, min: 1, help: 'the most tokens the policy may generate' },
    batch: { type: 'int', default: 8, min: 1, placeholder: '<n>', help: 'samples generated together (results equal one at a time; a killed run loses at most one batch)' },
    images: { type: 'string', placeholder: '<dir>', help: 'COCO train2014 images, for a refer folder' },
    split: { type: 'string', default: 'val', help: 'the split of a refer folder' },
    'split-by': { type: 'string', default: 'umd', help: 'the refs(<split-by>).p of a refer folder' },
    'reasonseg-ignore': { type: 'string', default: 'target', choices: ['target', 'background'], help: "ReasonSeg folders: 'ignore' regions count as target (as the released evaluation's data build) or as background" },
    'think-tokens': { type: 'string', default: 'released', choices: ['released', 'response'], help: "#Tok: as the released get_tokens.py (an unparsable output counts its error text) or the output's own think text" },
    worst: { type: 'int', default: 8, min: 0, help: 'overlays of the N lowest-IoU samples in worst/' },
    fresh: { type: 'boolean', help: 'start over: discard results in --out (a folder made with other weights, data or options is otherwise refused)' },
  },
  examples: ['npm run eval -- --data world:test:200', 'npm run eval -- --data ReasonSeg_test/test.parquet --weights weights/dpad-7b'],
} as const;

await runCli(SPEC, async args => {
  const specs = args.data;
  await initBackend();
  const weights = loadWeights(args.weights);
  const { segmenter: seg, scorer } = weights;
  // computed once: every dataset's results record which weights made them
  const fingerprint = weightsFingerprint(weights.policy, weights.sam, scorer);
  const perDataset: { name: string; tokens: number[] }[] = [];
  for (const spec of specs) {
    const skipped: Skipped[] = [];
    const opened = openDataset(spec, { skipped, images: args.images, split: args.split, splitBy: args['split-by'], reasonsegIgnore: args['reasonseg-ignore'] as 'target' | 'background' }).eval();
    const outDir = specs.length > 1 ? path.join(args.out, spec.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '')) : args.out;
    const { tables, records } = await evaluate(seg, opened.samples, await opened.total, {
      outDir, scorer, maxNewTokens: args['max-new-tokens'], name: spec, worst: args.worst, batchSize: args.batch, thinkTokens: args['think-tokens'] as 'released' | 'response',
      fresh: args.fresh, data: { spec, images: args.images ?? null, split: args.split, 'split-by': args['split-by'], 'reasonseg-ignore': args['reasonseg-ignore'] }, weightsDir: args.weights, fingerprint,
    });
    writeJsonAtomic(path.join(outDir, 'skipped.json'), skipped);
    perDataset.push({ name: spec, tokens: records.flatMap(r => (r.tokens != null ? [r.tokens] : [])) });
    console.log(`${spec}: gIoU ${(tables.all.gIoU * 100).toFixed(1)}  cIoU ${(tables.all.cIoU * 100).toFixed(1)}  n ${tables.all.n}  skipped ${skipped.length}; report in ${outDir}/report.md`);
  }
  if (specs.length > 1) {
    await tokenBands(path.join(args.out, 'tokens_by_dataset'), perDataset, 'Think tokens per dataset: mean ± std (Figure 5)', 'dataset');
    console.log(`Figure 5 (think tokens per dataset): ${args.out}/tokens_by_dataset.png`);
  }
});
