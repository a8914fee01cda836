/**
 * GRPO training in one process:
 *   npx tsx examples/train.ts [--config train.json] [--weights weights/demo] [--out runs/grpo] [--fresh] [--eval N]
 * On the world (no --data), the policy is measured on N held-out test samples before and after
 * training (mean total reward, its components, gIoU, cIoU; greedy decoding): before_after.json.
 * gIoU before, after and the paired gain get a 95 % bootstrap interval over the samples
 * (src/eval/bootstrap.ts), and the run says whether the gain exceeds the half-width of the
 * after estimate's interval (issue 22's criterion).
 * The config's fields (src/rl/config.ts) default to the paper's. Without --data the embedded world's
 * train split is used; --data takes the specs eval takes (src/data/open.ts) that can train:
 * world:<split>[:N] or a Seg-Zero training parquet (see README). A config with a `lora` section
 * trains adapters on the frozen base (docs/lora.md); `npm run export -- --run <out>` turns the
 * run's last checkpoint into a weights directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  bootstrapGIoU, bootstrapPairedGIoUDiff, DEFAULT_BOOTSTRAP_RESAMPLES, DEFAULT_WEIGHTS, evaluateOnWorld, GrpoTrainer, initBackend, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom, openDataset,
  readTrainConfig, referenceCopy, runCli, trainConfig, writeJsonAtomic, type BootstrapInterval, type Skipped, type WorldPolicyReport,
} from '../src/index.ts';

const SPEC = {
  name: 'npm run train --',
  summary: "GRPO training in one process (rollouts, rewards with the CLIP discriminative reward, GRPO, AdamW), resumable from its checkpoints. On the world, the policy is measured on held-out test samples before and after.",
  options: {
    config: { type: 'string', placeholder: '<file>', help: 'a training config JSON (fields: src/rl/config.ts); npm run train uses examples/configs/world.json' },
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/, clip/ (DPAD rewards) and sam2/ (held-out measure)' },
    out: { type: 'string', placeholder: '<dir>', help: "the run folder (default: the config's outDir)" },
    fresh: { type: 'boolean', help: 'start over instead of resuming from the last checkpoint' },
    'world-size': { type: 'int', default: 512, min: 1, help: "prompts drawn from the world's train split (without --data)" },
    data: { type: 'string', placeholder: '<spec>', help: "world:<train|val|test>[:N] or a Seg-Zero training .parquet (the specs eval takes that can train) instead of the world's train split" },
    subset: { type: 'int', default: 3000, min: 1, help: 'rows of the parquet used (a seeded selection, as the released code)' },
    eval: { type: 'int', default: 200, min: 0, help: 'held-out world test samples measured before and after (0: none); gIoU gets a 95 % bootstrap interval over them' },
  },
  examples: ['npm run train', 'npm run train -- --fresh --out runs/try2'],
} as const;

/** gIoU before and after with their bootstrap intervals, the paired gain, and issue 22's criterion (gain > the after half-width) */
function gIoUIntervals(before: WorldPolicyReport, after: WorldPolicyReport) {
  const opts = { resamples: DEFAULT_BOOTSTRAP_RESAMPLES, seed: 0, level: 0.95 };
  const b = bootstrapGIoU(before.perSample.iou, opts);
  const a = bootstrapGIoU(after.perSample.iou, opts);
  const gain = bootstrapPairedGIoUDiff(before.perSample.iou, after.perSample.iou, opts);
  return { before: b, after: a, gain, ...opts, exceeds: gain.estimate > a.halfWidth };
}

await runCli(SPEC, async args => {
  await initBackend();
  const cfg = args.config ? readTrainConfig(args.config) : trainConfig({});
  if (args.out) cfg.outDir = args.out;
  const policy = loadPolicyFrom(args.weights);
  // LoRA: the reference is the policy with its adapters off (the trainer attaches them): no copy
  const reference = cfg.lora ? null : referenceCopy(policy.model);
  const scorer = cfg.rewards.variant === 'dpad' ? loadScorerFrom(args.weights) : null;
  const skipped: Skipped[] = [];
  const spec = args.data ?? `world:train:${args['world-size']}`;
  const data = await openDataset(spec, { skipped, frame: policy.viewSize, subset: args.subset, seed: cfg.seed }).train();
  if (skipped.length) console.error(`${spec}: skipped ${skipped.length} malformed rows (first: ${skipped[0].id}: ${skipped[0].reason})`);
  const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer, data });
  // refuse a resume with another config before anything in the run folder is rewritten
  if (!args.fresh) trainer.resumableCheckpoint();
  fs.mkdirSync(cfg.outDir, { recursive: true });
  writeJsonAtomic(path.join(cfg.outDir, 'config.json'), cfg);
  // the base weights the run started from: `npm run export -- --run <outDir>` pairs the checkpoint with them
  writeJsonAtomic(path.join(cfg.outDir, 'run.json'), { weights: path.resolve(args.weights) });
  const nEval = args.data && !args.data.startsWith('world:') ? 0 : args.eval;
  // the held-out measure uses the DPAD reward (with CLIP) for both variants, so the figures compare
  const evalScorer = nEval ? scorer ?? loadScorerFrom(args.weights) : null;
  const sam = nEval ? loadSegmenterModelFrom(args.weights) : null;
  const measure = async (when: string) => {
    const r = await evaluateOnWorld(policy, sam!, evalScorer, { split: 'test', n: nEval });
    console.log(`${when}: test reward ${r.reward.toFixed(3)}  gIoU ${(r.gIoU * 100).toFixed(1)}  cIoU ${(r.cIoU * 100).toFixed(1)}  box IoU > 0.5 ${(r.boxIoUAbove05 * 100).toFixed(1)} %  (${nEval} samples)`);
    return r;
  };
  const baFile = path.join(cfg.outDir, 'before_after.json');
  const prior = fs.existsSync(baFile) && !args.fresh ? JSON.parse(fs.readFileSync(baFile, 'utf8')) : null;
  // an earlier run's 'before' is reused when it measured the same samples and kept them per sample (the bootstrap needs them)
  const reusable = (b: Partial<WorldPolicyReport> | undefined): b is WorldPolicyReport => !!b && b.n === nEval && b.perSample?.iou?.length === nEval;
  const before = nEval ? (reusable(prior?.before) ? prior.before as WorldPolicyReport : await measure('before')) : null;
  if (before) writeJsonAtomic(baFile, { before });
  const logs = await trainer.run({ fresh: args.fresh });
  const last = logs[logs.length - 1];
  console.log(`trained to step ${trainer.step}/${trainer.totalSteps}; last mean reward ${last?.reward.mean.toFixed(3) ?? '-'}; logs, curves and checkpoints in ${cfg.outDir}`);
  if (before) {
    const after = await measure('after');
    const gIoU = gIoUIntervals(before, after);
    writeJsonAtomic(baFile, { before, after, steps: trainer.step, config: args.config ?? null, gIoU });
    console.log(`held-out test (${nEval} samples): reward ${before.reward.toFixed(3)} -> ${after.reward.toFixed(3)}, gIoU ${(before.gIoU * 100).toFixed(1)} -> ${(after.gIoU * 100).toFixed(1)}; ${baFile}`);
    const pct = (x: number) => (x * 100).toFixed(1);
    const ci = (i: BootstrapInterval, sign = '') => `${sign && i.estimate >= 0 ? '+' : ''}${pct(i.estimate)}  95 % CI [${pct(i.lo)}, ${pct(i.hi)}]  (half-width ${pct(i.halfWidth)})`;
    console.log(`gIoU before: ${ci(gIoU.before)}`);
    console.log(`gIoU after:  ${ci(gIoU.after)}`);
    console.log(`gIoU gain:   ${ci(gIoU.gain, '+')}  (paired: the same resampled samples before and after)`);
    console.log(`(bootstrap over the ${nEval} samples, ${gIoU.resamples} resamples, seed ${gIoU.seed}, percentile intervals)`);
    console.log(gIoU.exceeds
      ? `the gain (${pct(gIoU.gain.estimate)}) exceeds the half-width of the after estimate's 95 % interval (${pct(gIoU.after.halfWidth)}): training raised test gIoU beyond the noise of the measure`
      : `the gain (${pct(gIoU.gain.estimate)}) does not exceed the half-width of the after estimate's 95 % interval (${pct(gIoU.after.halfWidth)}): not a visible improvement on ${nEval} samples`);
    console.log(gIoU.gain.lo > 0 ? "the gain's paired 95 % interval lies above 0" : "the gain's paired 95 % interval includes 0 (or lies below it)");
  }
});

