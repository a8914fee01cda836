/**
 * The demo weights' acceptance figures on the world's held-out test split (RESULTS.md):
 *   npx tsx tools/eval-demo.ts [--weights weights/demo] [--n 200] [--policy-n 40] [--out out/demo-metrics.json] [--manifests]
 * With --manifests, each model's figures are written into its manifest.json as `test`.
 * SAM2: mean IoU from the GT box (single-mask output) and from box + points (the pipeline's call);
 * CLIP: share of targets with S1 > S2 for the reference caption; policy: mean format rewards (and
 * the other components, gIoU) of greedy answers, and whether it uses its image (policyImageUse).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../src/backend.ts';
import { clipS1AboveS2, policyImageUse, sam2BoxIoU } from '../src/demo/probes.ts';
import { evaluateOnWorld } from '../src/eval/world_policy.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom, loadSegmenterModelFrom } from '../src/pipeline/bundle.ts';

import { installErrorPath, parseCli } from '../src/util/cli.ts';

const SPEC = {
  name: 'npx tsx tools/eval-demo.ts',
  summary: "The demo weights' acceptance figures on the world's held-out test split (SAM2 box IoU, CLIP S1 > S2, the policy's greedy rewards and image use).",
  options: {
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/, clip/ and sam2/' },
    n: { type: 'int', default: 200, min: 1, help: 'test samples for SAM2 and CLIP' },
    'policy-n': { type: 'int', default: 40, min: 1, help: 'test samples for the policy' },
    out: { type: 'string', default: 'out/demo-metrics.json', placeholder: '<file>', help: 'where the figures go' },
    only: { type: 'string', placeholder: '<sam2,clip,policy>', help: 'measure only these models' },
    manifests: { type: 'boolean', help: "write each model's figures into its manifest.json as `test`" },
  },
} as const;

installErrorPath(SPEC);
const values = parseCli(SPEC);
await initBackend();
const W = values.weights!;
const n = Number(values.n);
const only = values.only?.split(',');
const want = (k: string) => !only || only.includes(k);
const result: Record<string, unknown> = { weights: W, split: 'test' };
const sam = loadSegmenterModelFrom(W);
if (want('sam2')) {
  result.sam2 = sam2BoxIoU(sam, 'test', n);
  console.log('sam2', JSON.stringify(result.sam2));
}
const scorer = loadScorerFrom(W);
if (want('clip')) {
  result.clip = await clipS1AboveS2(scorer, 'test', n);
  console.log('clip', JSON.stringify(result.clip));
}
if (want('policy')) {
  const policy = loadPolicyFrom(W);
  // does the policy look at its image? (answer NLL under its own image and another sample's)
  // the per-sample values stay out of the figures (and the manifest): the means are what is reported
  const { perSample: _perSample, ...report } = await evaluateOnWorld(policy, sam, scorer, { split: 'test', n: Number(values['policy-n']) });
  result.policy = { ...report, imageUse: policyImageUse(policy, 'test', Number(values['policy-n'])) };
  console.log('policy', JSON.stringify(result.policy));
}
writeJsonAtomic(values.out!, result);
if (values.manifests) {
  for (const [dir, key] of [['sam2', 'sam2'], ['clip', 'clip'], ['policy', 'policy']] as const) {
    if (!(key in result)) continue;
    const file = path.join(W, dir, 'manifest.json');
    const man = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
    writeJsonAtomic(file, { ...man, test: { command: `npx tsx tools/eval-demo.ts ${process.argv.slice(2).join(' ')}`, ...(result[key] as object) } });
  }
}
