/**
 * The demo policy's warm start: teacher-forced cross-entropy on reference responses in the SPEC
 * format, after two optional stages: the vision tower alone on dense per-cell targets
 * (pretrain_vision.ts), then the decoder's alignment on scene descriptions (pretrain_align.ts).
 * Its measure is whether the policy uses its image (probes.ts policyImageUse).
 */
import * as path from 'node:path';
import { openCheckpoint } from '../io/checkpoint.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import { PolicyTokenizer } from '../models/qwen2_5_vl/tokenizer.ts';
import { loadQwenWeights } from '../models/qwen2_5_vl/weights.ts';
import { makePolicy } from '../pipeline/policy.ts';
import { qwenConfigJson, worldCorpus, worldQwenConfig, writeWorldTokenizer } from './models.ts';
import { DESCRIBE_PROMPT } from './describe.ts';
import { alignPolicy } from './pretrain_align.ts';
import { initNumberEmbeddings } from './numbers.ts';
import { saveModel, seedInit, trainLoop, trainSample, type Manifest, type RunContext } from './pretrain_loop.ts';
import { pretrainVision } from './pretrain_vision.ts';
import { policyImageUse, policyLocateBox, policyTeacherForcedBox } from './probes.ts';
import { referenceExample, weightedNll } from './sft.ts';

export interface PolicyRecipe {
  /** the model size (models.ts worldQwenConfig), default 'ground' */
  size?: 'demo' | 'ground';
  /** default 300 */
  steps?: number;
  /** peak learning rate, default 3e-3 */
  lr?: number;
  /** samples per batch, default 4 */
  batch?: number;
  /**
   * the square view the policy sees, in pixels (default 224: the world's 160-px images upsampled,
   * so a small object spans two 14-px patches; at 112 the tower reads shape at 28 % after 300
   * shape-only steps, at 224 at 50 %, RESULTS.md)
   */
  view?: number;
  /** keep the vision tower as it is (its seeded init, or as the vision stage left it) */
  freezeEncoder?: boolean;
  /** validation samples, default 24 */
  val?: number;
  /** loss weight of the answer tokens, default 1 */
  answerWeight?: number;
  /** steps of the dense vision stage first, default 0 */
  visionSteps?: number;
  /** learning rate of the vision stage, default 3e-3 */
  visionLr?: number;
  /** the alignment stage: L locate steps, D description steps, then M mixed steps (needs freezeEncoder) */
  align?: { locateSteps?: number; describeSteps: number; mixedSteps: number };
  /** learning rate of the alignment stage, default 1e-3 */
  alignLr?: number;
  /** weight of the think's final sentence and the answer in mixed steps, default 10 */
  groundWeight?: number;
  /** log the teacher-forced box probe (probes.ts) on 32 val samples every N alignment steps (0: never) */
  probeEvery?: number;
}

export function pretrainPolicy(ctx: RunContext, o: PolicyRecipe = {}): Manifest {
  const { out, seed } = ctx;
  const log = ctx.log ?? console.log;
  const view = o.view ?? 224;
  // every coordinate of the view (0..view) is one token, and the corpus's responses are in the view's frame
  const tokInfo = writeWorldTokenizer(out, { numbers: view, corpus: [...worldCorpus(400, view), DESCRIBE_PROMPT] });
  const cfg = worldQwenConfig(tokInfo, o.size ?? 'ground');
  const model = new Qwen2_5_VL(cfg);
  seedInit(model, seed);
  // the number tokens start with the Fourier code of their value (numbers.ts), as the dense vision stage teaches the tower
  if (!ctx.init) initNumberEmbeddings(model, PolicyTokenizer.load(out), view);
  // init: continue from an earlier warm start (same tokenizer and sizes)
  if (ctx.init) loadQwenWeights(model, openCheckpoint(path.join(ctx.init, 'model.safetensors')));
  const policy = makePolicy(model, PolicyTokenizer.load(out), { viewSize: view });
  // visionSteps N: first train the vision tower alone for N steps on dense per-cell targets
  // (cells.ts) through a linear probe that is then discarded
  const visionSteps = o.visionSteps ?? 0;
  const visionMetrics = visionSteps > 0 ? pretrainVision(policy, visionSteps, o.visionLr ?? 3e-3, { seed }) : {};
  if (visionSteps > 0) log(`policy vision: ${JSON.stringify(visionMetrics)}`);
  // freezeEncoder: trained jointly from scratch through the decoder alone, the tiny tower learns to
  // emit one large constant vector for every patch (image tokens 70x the norm of text embeddings,
  // 5 % image-dependent), and the decoder never learns to look at the image
  if (o.freezeEncoder) model.setTrainable(false, n => n.startsWith('visual.'));
  // answerWeight w: the loss weight of the <answer> JSON's tokens against 1 for the rest. The
  // coordinates are a few tokens of a long response, so with equal weights the reasoning text
  // dominates and the policy learns the format long before it learns to ground
  const answerWeight = o.answerWeight ?? 1;
  // align L,D,M: before the main loop, L steps on locate questions, D steps on dense scene
  // descriptions, then M steps mixing them with ground-weighted reference responses (pretrain_align.ts)
  let alignMetrics: Record<string, number> = {};
  if (o.align) {
    const { locateSteps: L = 0, describeSteps: D, mixedSteps: M } = o.align;
    const probe = o.probeEvery ? { every: o.probeEvery, run: () => ({ ...policyTeacherForcedBox(policy, 'val', 32), locateIoUAbove05: policyLocateBox(policy, 'val', 32).iouAbove05 }) } : undefined;
    const r = alignPolicy(policy, { locateSteps: L, describeSteps: D, mixedSteps: M, lr: o.alignLr ?? 1e-3, answerWeight, groundWeight: o.groundWeight ?? 10, probe, log });
    alignMetrics = { ...(L ? { alignLocateSteps: L, alignLocateLoss: r.locateLoss } : {}), alignDescribeSteps: D, alignMixedSteps: M, alignDescribeLoss: r.describeLoss, alignMixedLoss: r.mixedLoss };
    log(`policy align: ${JSON.stringify(alignMetrics)}`);
  }
  const B = o.batch ?? 4;
  const step = (i: number) => {
    const samples = Array.from({ length: B }, (_, k) => trainSample(i * B + k, seed + 1));
    return weightedNll(policy, samples.map(s => referenceExample(policy, s, answerWeight)));
  };
  const evaluate = () => {
    const r = policyImageUse(policy, 'val', o.val ?? 24);
    const b = policyTeacherForcedBox(policy, 'val', 64);
    const loc = policyLocateBox(policy, 'val', 64);
    return {
      valLocateIoUAbove05: loc.iouAbove05, valLocateMeanIoU: loc.meanIoU,
      ...visionMetrics, ...alignMetrics, valAnswerNll: r.answerNll, valAnswerNllOtherImage: r.otherImageNll,
      valTeacherForcedIoUAbove05: b.iouAbove05, valTeacherForcedMeanIoU: b.meanIoU, valTeacherForcedCaptionAcc: b.captionAcc,
    };
  };
  return trainLoop(ctx, 'policy', model, o.steps ?? 300, o.lr ?? 3e-3, step, evaluate, () => {
    saveModel(out, model, qwenConfigJson(cfg));
    writeJsonAtomic(path.join(out, 'dpad.json'), { viewSize: view });
  });
}
