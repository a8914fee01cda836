/**
 * Pretraining of the demo models on the embedded world, all through tfjs autograd:
 *   npx tsx tools/pretrain.ts clip   --out weights/demo/clip   [--steps N] [--seed S]
 *   npx tsx tools/pretrain.ts sam2   --out weights/demo/sam2   [--steps N] [--seed S] [--image-size 192] [--freeze-encoder] [--init dir]
 *   npx tsx tools/pretrain.ts policy --out weights/demo/policy [--steps N] [--seed S] [--vision-steps N] [--freeze-encoder] [--align-steps D,M]
 * clip: symmetric InfoNCE on (object crop, caption) pairs; sam2: BCE + dice (low resolution), dice at
 * the image's resolution and the IoU-head MSE, for box and box + points prompts; policy: teacher-forced cross-entropy on reference responses in the SPEC
 * format (the warm start), after an optional first stage that trains its vision tower on dense
 * per-cell object targets (src/demo/pretrain_vision.ts). Each writes config, weights and a manifest (command, seed, metrics),
 * checkpoints every --every steps, and is reproducible from its seed. The recipes are src/demo/pretrain_{clip,sam2,policy}.ts.
 */
import * as fs from 'node:fs';
import { initBackend } from '../src/backend.ts';
import { pretrainClip } from '../src/demo/pretrain_clip.ts';
import type { RunContext } from '../src/demo/pretrain_loop.ts';
import { pretrainPolicy } from '../src/demo/pretrain_policy.ts';
import { pretrainSam2 } from '../src/demo/pretrain_sam2.ts';
import { installErrorPath, parseCli, reportError, UsageError } from '../src/util/cli.ts';

const SPEC = {
  name: 'npx tsx tools/pretrain.ts',
  summary: 'Pretrain a demo model on the embedded world through tfjs autograd, writing config, weights and a manifest (command, seed, metrics).',
  positionals: { name: 'clip|sam2|policy', help: 'which model', min: 1, max: 1 },
  options: {
    out: { type: 'string', required: true, placeholder: '<dir>', help: 'the model directory to write' },
    steps: { type: 'int', min: 0, help: 'training steps (default: clip 600, sam2 1500, policy 300)' },
    seed: { type: 'int', default: 0, help: 'the seed of data order and initialisation' },
    lr: { type: 'number', min: 0, help: 'peak learning rate (default: clip 2e-3, sam2 3e-3, policy 3e-3)' },
    batch: { type: 'int', min: 1, help: 'batch size (default: clip 16, sam2 8, policy 4)' },
    init: { type: 'string', placeholder: '<dir>', help: 'start from this model directory' },
    every: { type: 'int', default: 100, min: 1, help: 'checkpoint every N steps' },
    vocab: { type: 'string', placeholder: '<file>', help: 'clip: the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)' },
    view: { type: 'int', default: 224, min: 28, help: 'policy: the square view it sees, in pixels (the shipped policy: 112)' },
    'image-size': { type: 'int', min: 16, help: 'sam2: the input resolution' },
    objects: { type: 'int', min: 1, help: 'sam2: prompts per image (default 4)' },
    'freeze-encoder': { type: 'boolean', help: 'sam2: freeze the image encoder; policy: freeze the vision tower' },
    val: { type: 'int', min: 1, help: 'validation samples (default: sam2 60, policy 24)' },
    'answer-weight': { type: 'number', min: 0, help: 'policy: loss weight of the answer tokens (default 1)' },
    'vision-steps': { type: 'int', min: 0, help: 'policy: steps of the dense vision stage first (default 0)' },
    'vision-lr': { type: 'number', min: 0, help: 'policy: learning rate of the vision stage (default 3e-3)' },
    'align-steps': { type: 'string', placeholder: '<[L,]D,M>', help: 'policy: L locate steps (default 0), D description steps, then M mixed steps (the alignment stage)' },
    'align-lr': { type: 'number', min: 0, help: 'policy: learning rate of the alignment stage (default 1e-3)' },
    'ground-weight': { type: 'number', min: 0, help: "policy: weight of the think's final sentence and the answer in mixed steps (default 10)" },
    size: { type: 'string', placeholder: '<demo|ground>', help: "policy: the model size (src/demo/models.ts; default ground; demo is the shipped policy's)" },
    'probe-every': { type: 'int', min: 0, help: 'policy: log the teacher-forced box probe on 32 val samples every N alignment steps (default 0: never)' },
  },
  examples: ['npx tsx tools/pretrain.ts clip --out weights/demo/clip', 'npx tsx tools/pretrain.ts policy --out /tmp/p --steps 300 --vision-steps 400'],
} as const;

installErrorPath(SPEC);
const values = parseCli(SPEC);
const positionals = values._;
const what = positionals[0];
if (!['clip', 'sam2', 'policy'].includes(what)) {
  process.exit(reportError(SPEC, new UsageError(`the model must be clip, sam2 or policy, got ${JSON.stringify(what)}`)));
}
// --align-steps [L,]D,M: the alignment stage's step counts (checked before anything is trained or written)
let align: { locateSteps: number; describeSteps: number; mixedSteps: number } | undefined;
if (what === 'policy' && values['align-steps']) {
  const parts = values['align-steps'].split(',').map(Number);
  const [L, D, M] = parts.length === 2 ? [0, ...parts] : parts;
  if (!(parts.length === 2 || parts.length === 3) || ![L, D, M].every(x => Number.isInteger(x) && x >= 0)) {
    throw new UsageError(`--align-steps wants D,M or L,D,M (step counts), got ${JSON.stringify(values['align-steps'])}`);
  }
  align = { locateSteps: L, describeSteps: D, mixedSteps: M };
}
function policySize(v: string | undefined): 'demo' | 'ground' | undefined {
  if (v === undefined || v === 'demo' || v === 'ground') return v;
  throw new UsageError(`--size wants demo or ground, got ${JSON.stringify(v)}`);
}
if (what === 'policy') policySize(values.size);
await initBackend();
const ctx: RunContext = {
  out: values.out,
  seed: Number(values.seed),
  command: `npx tsx tools/pretrain.ts ${process.argv.slice(2).join(' ')}`,
  every: Number(values.every),
  init: values.init,
};
fs.mkdirSync(ctx.out, { recursive: true });

if (what === 'clip') {
  pretrainClip(ctx, { vocab: values.vocab ?? '../shared/fixtures/clip-tiny-openai/bpe_simple_vocab_16e6.txt.gz', steps: values.steps, lr: values.lr, batch: values.batch });
}

if (what === 'sam2') {
  pretrainSam2(ctx, { steps: values.steps, lr: values.lr, batch: values.batch, imageSize: values['image-size'], objects: values.objects, freezeEncoder: values['freeze-encoder'], val: values.val });
}

if (what === 'policy') {
  pretrainPolicy(ctx, {
    steps: values.steps, lr: values.lr, batch: values.batch, view: values.view, freezeEncoder: values['freeze-encoder'], val: values.val,
    answerWeight: values['answer-weight'], visionSteps: values['vision-steps'], visionLr: values['vision-lr'],
    align, alignLr: values['align-lr'], groundWeight: values['ground-weight'], probeEvery: values['probe-every'], size: policySize(values.size),
  });
}
