/**
 * npm run ablation: baseline (Seg-Zero rewards), DPAD binary and DPAD scaled, each trained from the
 * warm-started demo policy with several seeds (config seed + 0..k-1), same steps, evaluated on the
 * world's test split. table.md: mean ± std over seeds per variant of the paper's Table 5 metrics
 * (gIoU, cIoU, #Tok, S1, S2, SNR, TS1, TS2, TSNR; SNR and TSNR in both forms) with the warm start,
 * and the per-seed table beside it; ablation.json: the same figures, machine-readable.
 *   npx tsx examples/ablation.ts [--weights weights/demo] [--steps N] [--seeds 3] [--n 200]
 *     [--variants baseline,dpad-binary,dpad-scaled] [--out out/ablation] [--fresh]
 * Resumable: each run lives in <out>/<variant>-s<seed> (checkpoints, log, eval/). A rerun resumes a
 * run from its last checkpoint (a finished one trains no step) and reuses its evaluation when
 * eval/results.jsonl was made with the same weights (fingerprint), data and options; a run made
 * from other warm-start weights or with another config (run.json) is retrained from the start.
 * --fresh retrains and re-evaluates everything.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ABLATION_VARIANTS, ablationJson, ablationMarkdown, DEFAULT_WEIGHTS, evaluate, GrpoTrainer, initBackend, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom,
  parseVariants, provenanceMismatch, readResultsFile, readTrainConfig, referenceCopy, runCli, Segmenter, weightsFingerprint, worldSample, worldTrainDataset,
  writeFileAtomic, writeJsonAtomic, type AblationRun, type EvalProvenance, type EvalSample, type MetricTable,
} from '../src/index.ts';

const SPEC = {
  name: 'npm run ablation --',
  summary: "Baseline (Seg-Zero rewards), DPAD binary and DPAD scaled, several seeds each, same steps, all from the warm-started policy, evaluated on the world's test split: mean ± std over seeds of the paper's Table 5 metrics, and the per-seed table.",
  options: {
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/, clip/ and sam2/' },
    steps: { type: 'int', min: 1, help: "GRPO steps per run (default: the config's)" },
    seeds: { type: 'int', default: 3, min: 1, help: "seeds per variant: the config's seed + 0..k-1" },
    n: { type: 'int', default: 200, min: 1, help: 'test samples evaluated' },
    variants: { type: 'string', default: Object.keys(ABLATION_VARIANTS).join(','), placeholder: '<list>', help: 'the variants run, a comma list' },
    out: { type: 'string', default: 'out/ablation', placeholder: '<dir>', help: 'where the runs, evaluations, table.md and ablation.json go' },
    config: { type: 'string', default: 'examples/configs/world.json', placeholder: '<file>', help: 'the training config every run shares (its seed is the first seed)' },
    fresh: { type: 'boolean', help: 'retrain and re-evaluate every run instead of resuming and reusing' },
  },
  examples: ['npm run ablation', 'npm run ablation -- --variants baseline,dpad-binary --seeds 5'],
} as const;

const MAX_NEW_TOKENS = 160;

await runCli(SPEC, async args => {
  const variants = parseVariants(args.variants);
  await initBackend();
  const W = args.weights;
  const out = args.out;
  const n = args.n;
  const base = readTrainConfig(args.config);
  const steps = args.steps ?? base.steps;
  const seeds = Array.from({ length: args.seeds }, (_, k) => base.seed + k);
  const scorer = loadScorerFrom(W);
  const sam = loadSegmenterModelFrom(W);
  const data = `world:test:${n}`;
  const testSet = (): Iterable<EvalSample> => (function* () {
    for (let i = 0; i < n; i++) { const s = worldSample('test', i); yield { id: s.id, image: s.image, query: s.query, mask: s.mask, labels: { type: s.type, difficulty: s.difficulty } }; }
  })();

  /** evaluate into <dir>/eval: resumed / reused when the folder was made with these weights, data and options, else started over */
  async function evalPolicy(dir: string, name: string, policy: ReturnType<typeof loadPolicyFrom>): Promise<MetricTable> {
    const outDir = path.join(dir, 'eval');
    const fingerprint = weightsFingerprint(policy, sam, scorer);
    const now: EvalProvenance = { version: 1, weights: { ...fingerprint, dir: null }, data, options: { maxNewTokens: MAX_NEW_TOKENS, thinkTokens: 'released', variant: 'dpad', scorer: true } };
    const prior = readResultsFile(path.join(outDir, 'results.jsonl'));
    const stale = prior.records.length > 0 && provenanceMismatch(outDir, prior.provenance, now, prior.records.length) !== null;
    const reused = !args.fresh && !stale ? prior.records.length : 0;
    if (reused) console.error(`${name}: reusing ${Math.min(reused, n)} of ${n} evaluated samples in ${outDir}`);
    else if (stale && !args.fresh) console.error(`${name}: ${outDir} was made with other weights, data or options: evaluating again`);
    const seg = new Segmenter(policy, sam, { weightsDir: W });
    try {
      const { tables } = await evaluate(seg, testSet(), n, { outDir, scorer, maxNewTokens: MAX_NEW_TOKENS, name, fresh: args.fresh || stale, data, fingerprint, variant: 'dpad', thinkTokens: 'released' });
      return tables.all;
    } finally {
      seg.dispose();
    }
  }

  const warmPolicy = loadPolicyFrom(W);
  // the warm start's policy fingerprint: a run trained from other weights is stale
  const warmFingerprint = weightsFingerprint(warmPolicy, sam, null).policy;
  const warm = await evalPolicy(path.join(out, 'warm-start'), 'warm-start', warmPolicy);
  warmPolicy.model.dispose();

  const runs: AblationRun[] = [];
  const report = () => {
    const title = `Ablation on the world's test split (${n} samples, ${steps} GRPO steps per run, seeds ${seeds.join(', ')}, config ${args.config})`;
    const notes = [`Variants: ${variants.map(v => `${v} (${JSON.stringify(ABLATION_VARIANTS[v])})`).join(', ')}. Every policy is evaluated with the DPAD prompt (caption), greedy, ${MAX_NEW_TOKENS} new tokens at most.`];
    writeFileAtomic(path.join(out, 'table.md'), ablationMarkdown({ title, notes, warmStart: warm, runs }));
    writeJsonAtomic(path.join(out, 'ablation.json'), { n, steps, seeds, variants, config: args.config, weights: W, ...ablationJson(runs, warm) });
  };
  for (const variant of variants) {
    for (const seed of seeds) {
      const name = `${variant}-s${seed}`;
      const dir = path.join(out, name);
      const cfg = readTrainConfig(args.config);
      cfg.steps = steps;
      cfg.seed = seed;
      cfg.rewards = { ...cfg.rewards, ...ABLATION_VARIANTS[variant] };
      cfg.outDir = dir;
      const runFile = path.join(dir, 'run.json');
      const priorRun = fs.existsSync(runFile) ? JSON.parse(fs.readFileSync(runFile, 'utf8')) as { basePolicy?: string; config?: unknown } : null;
      // resumed only when made from the same warm start with the same config (steps included: a
      // finished longer run must not stand in for a shorter one), else trained again from the start
      const why = !priorRun ? null : priorRun.basePolicy !== warmFingerprint ? 'other warm-start weights' : JSON.stringify(priorRun.config) !== JSON.stringify(cfg) ? 'another config' : null;
      if (why && !args.fresh) console.error(`${name}: ${dir} was trained from ${why}: training again`);
      const fresh = args.fresh || !priorRun || why !== null;
      const policy = loadPolicyFrom(W);
      // LoRA: the reference is the policy with its adapters off (no copy)
      const reference = cfg.lora ? null : referenceCopy(policy.model);
      const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer: cfg.rewards.variant === 'dpad' ? scorer : null, data: worldTrainDataset(512, policy.viewSize) });
      try {
        // refuse a resume with another config (naming the field) before anything is rewritten
        if (!fresh) trainer.resumableCheckpoint();
        fs.mkdirSync(dir, { recursive: true });
        writeJsonAtomic(runFile, { weights: path.resolve(W), basePolicy: warmFingerprint, variant, seed, config: cfg });
        let ran = 0;
        trainer.onStep = () => { ran++; };
        await trainer.run({ fresh });
        if (!ran) console.error(`${name}: the checkpoint at step ${trainer.step} is the finished run: no training`);
        runs.push({ variant, seed, table: await evalPolicy(dir, name, policy) });
      } finally {
        trainer.optimizer.dispose();
        reference?.dispose();
        policy.model.dispose();
      }
      report(); // after each run: a killed ablation leaves the table of the runs done so far
    }
  }
  report();
  console.log(fs.readFileSync(path.join(out, 'table.md'), 'utf8'));
});
