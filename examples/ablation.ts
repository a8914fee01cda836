/**
 * npm run ablation: baseline (Seg-Zero rewards) vs DPAD rewards, same seed and steps, both from the
 * warm-started demo policy, evaluated on the world's test split; writes a table like the paper's
 * Table 5 (gIoU, cIoU, #Tok, S1, S2, SNR, TS1, TS2, TSNR) to out/ablation/table.md.
 *   npx tsx examples/ablation.ts [--weights weights/demo] [--steps N (default: the config's)] [--n 40] [--out out/ablation]
 */
import * as path from 'node:path';
import {
  DEFAULT_WEIGHTS, evaluate, GrpoTrainer, initBackend, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom, readTrainConfig, referenceCopy,
  runCli, Segmenter, worldSample, worldTrainDataset, writeFileAtomic, type EvalSample, type MetricTable,
} from '../src/index.ts';

const SPEC = {
  name: 'npm run ablation --',
  summary: "Baseline (Seg-Zero rewards) vs DPAD rewards, same seed and steps, both from the warm-started policy, evaluated on the world's test split: a table like the paper's Table 5.",
  options: {
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/, clip/ and sam2/' },
    steps: { type: 'int', min: 1, help: "GRPO steps per run (default: the config's)" },
    n: { type: 'int', default: 40, min: 1, help: 'test samples evaluated' },
    out: { type: 'string', default: 'out/ablation', placeholder: '<dir>', help: 'where the runs, evaluations and table.md go' },
    config: { type: 'string', default: 'examples/configs/world.json', placeholder: '<file>', help: 'the training config both runs share' },
  },
} as const;

await runCli(SPEC, async args => {
  await initBackend();
  const W = args.weights;
  const out = args.out;
  const n = args.n;
  const scorer = loadScorerFrom(W);
  const sam = loadSegmenterModelFrom(W);
  const testSet = (): Iterable<EvalSample> => (function* () {
    for (let i = 0; i < n; i++) { const s = worldSample('test', i); yield { id: s.id, image: s.image, query: s.query, mask: s.mask, labels: { type: s.type, difficulty: s.difficulty } }; }
  })();

  const rows: [string, MetricTable][] = [];
  async function evalPolicy(name: string, policy: ReturnType<typeof loadPolicyFrom>) {
    const seg = new Segmenter(policy, sam);
    // fresh: the policies are retrained on every run, so an earlier run's per-sample results are stale
    const { tables } = await evaluate(seg, testSet(), n, { outDir: path.join(out, name, 'eval'), scorer, maxNewTokens: 160, name, fresh: true });
    rows.push([name, tables.all]);
    seg.dispose();
  }

  await evalPolicy('warm-start', loadPolicyFrom(W));
  for (const variant of ['baseline', 'dpad'] as const) {
    const cfg = readTrainConfig(args.config);
    if (args.steps !== undefined) cfg.steps = args.steps;
    cfg.rewards = { ...cfg.rewards, variant };
    cfg.outDir = path.join(out, variant);
    const policy = loadPolicyFrom(W);
    // LoRA: the reference is the policy with its adapters off (no copy)
    const reference = cfg.lora ? null : referenceCopy(policy.model);
    const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer: variant === 'dpad' ? scorer : null, data: worldTrainDataset(512, policy.viewSize) });
    await trainer.run({ fresh: true });
    await evalPolicy(variant, policy);
    reference?.dispose();
    policy.model.dispose();
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  const lines = [
    `# Ablation on the world's test split (${n} samples, ${args.steps ?? readTrainConfig(args.config).steps} GRPO steps each, seed from ${args.config})`, '',
    '| method | gIoU | cIoU | #Tok | S1 | S2 | SNR (mean of ratios) | SNR (ratio of means) | TS1 | TS2 | TSNR (mean of ratios) | TSNR (ratio of means) |', '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(([name, t]) => `| ${name} | ${f(t.gIoU * 100)} | ${f(t.cIoU * 100)} | ${f(t.tokens.mean)} | ${f(t.S1, 2)} | ${f(t.S2, 2)} | ${f(t.SNR, 3)} | ${f(t.SNR_ratio_of_means, 3)} | ${f(t.TS1, 2)} | ${f(t.TS2, 2)} | ${f(t.TSNR, 3)} | ${f(t.TSNR_ratio_of_means, 3)} |`),
    '',
  ];
  writeFileAtomic(path.join(out, 'table.md'), lines.join('\n'));
  console.log(lines.join('\n'));
});
