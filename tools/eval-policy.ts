/**
 * Reward components of a policy's greedy answers on the world (no segmenter needed):
 *   npx tsx tools/eval-policy.ts [--weights weights/demo] [--split val] [--n 30]
 */
import { initBackend } from '../src/backend.ts';
import { worldSample, type Split } from '../src/data/world/generator.ts';
import { generate } from '../src/models/qwen2_5_vl/generate.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom } from '../src/pipeline/bundle.ts';
import { encodePrompt } from '../src/pipeline/policy.ts';
import { computeReward } from '../src/rewards/registry.ts';
import { captionScores } from '../src/rewards/discriminative.ts';
import { parseGroundTruth, parseResponse } from '../src/prompt/answer.ts';
import { Progress } from '../src/util/progress.ts';

import { installErrorPath, parseCli } from '../src/util/cli.ts';

const SPEC = {
  name: 'npx tsx tools/eval-policy.ts',
  summary: "Reward components of a policy's greedy answers on the world (no segmenter needed).",
  options: {
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/ and clip/' },
    split: { type: 'string', default: 'val', choices: ['train', 'val', 'test'], help: 'the world split' },
    n: { type: 'int', default: 30, min: 1, help: 'samples' },
    'max-new-tokens': { type: 'int', default: 160, min: 1, help: 'the most tokens the policy may generate' },
  },
} as const;

installErrorPath(SPEC);
const values = parseCli(SPEC);
await initBackend();
const policy = loadPolicyFrom(values.weights!);
const scorer = loadScorerFrom(values.weights!);
const n = Number(values.n);
const sums: Record<string, number> = {};
let tokens = 0;
const bar = new Progress('eval-policy', n);
for (let i = 0; i < n; i++) {
  const s = worldSample(values.split as Split, i, { frame: policy.viewSize });
  const enc = encodePrompt(policy, s.image, s.query);
  const g = generate(policy.model, { ids: Int32Array.from(enc.ids), batch: 1, length: enc.ids.length, pixelValues: enc.pixelValues, grids: [enc.grid], maxNewTokens: Number(values['max-new-tokens']), greedy: true, stopTokens: policy.stopTokens, repetitionPenalty: policy.repetitionPenalty, suppressTokens: policy.suppressTokens });
  enc.pixelValues.dispose();
  const text = policy.tokenizer.decode(g.tokens[0], true);
  const p = parseResponse(text);
  const gt = parseGroundTruth(s.solution);
  const [sc] = await captionScores(scorer, enc.view, gt.box, [p]);
  const r = computeReward(p, gt, sc);
  for (const [k, v] of Object.entries(r.components)) sums[k] = (sums[k] ?? 0) + v!.value;
  sums.total = (sums.total ?? 0) + r.total;
  tokens += g.tokens[0].length;
  if (i < 2) console.error(`\n${s.query}\n  -> ${text}`);
  bar.tick();
}
const mean = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, +(v / n).toFixed(3)]));
console.log(JSON.stringify({ weights: values.weights, split: values.split, n, meanResponseTokens: tokens / n, ...mean }));
