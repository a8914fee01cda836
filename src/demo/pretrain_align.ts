/**
 * The policy warm start's alignment stage: the decoder (vision tower frozen) learns to read the
 * image from dense scene descriptions (describe.ts), in which nearly every token
 * depends on the image, then on a mix of those and the reference responses, whose image-determined
 * tokens (the final "It is <caption> in the <place>." of the think, and the answer) are weighted up.
 * With the reference responses alone the decoder explains them from the query and the think and
 * never looks (RESULTS.md); descriptions break that within a few hundred steps.
 */
import * as tf from '@tensorflow/tfjs-core';
import { worldSample, type WorldSample } from '../data/world/generator.ts';
import { chatPrompt } from '../models/qwen2_5_vl/processor.ts';
import { encodeImage, type Policy } from '../pipeline/policy.ts';
import { AdamW } from '../optim/adamw.ts';
import { warmup } from '../optim/schedule.ts';
import { optimizerStep } from '../optim/step.ts';
import { Progress } from '../util/progress.ts';
import { DESCRIBE_PROMPT, describeScene } from './describe.ts';
import { locateExample } from './locate.ts';
import { referenceExample, weightedNll, type WeightedExample } from './sft.ts';

export interface AlignOptions {
  /** first, locate-only steps (batches of 16, locate.ts); default 0 */
  locateSteps?: number;
  /** description-only steps (batches of 8) */
  describeSteps: number;
  /**
   * then steps alternating reference batches (4, even steps) and description batches (8, odd);
   * with locate steps, a cycle of three: reference, description, locate
   */
  mixedSteps: number;
  lr: number;
  /** loss weight of the think's final, image-determined sentence in reference responses */
  groundWeight?: number;
  /** loss weight of the answer JSON in reference responses */
  answerWeight?: number;
  /** every `every` steps of a phase (and at its end), `run()` is logged: a progress probe */
  probe?: { every: number; run: () => Record<string, number> };
  log?: (line: string) => void;
}

/** description example: short user turn, the scene's description as the response */
function describeExample(policy: Policy, s: WorldSample): WeightedExample {
  const e = encodeImage(policy, s.image);
  const ids = policy.tokenizer.encode(chatPrompt(DESCRIBE_PROMPT, e.tokens));
  const resp = [...policy.tokenizer.encode(describeScene(s, policy.viewSize)), policy.tokenizer.tokenId('<|im_end|>')];
  return { ids, resp, weights: new Float32Array(resp.length).fill(1), pixels: e.pixelValues, grid: e.grid };
}

type Phase = 'locate' | 'describe' | 'mixed';

/** the step's batch: train samples from fixed index ranges, so a run is reproducible */
function stepBatch(policy: Policy, i: number, phase: Phase, o: { answerWeight: number; groundWeight: number; locate: boolean }): WeightedExample[] {
  const v = policy.viewSize;
  const kind = phase !== 'mixed' ? phase : o.locate ? (['reference', 'describe', 'locate'] as const)[i % 3] : i % 2 === 1 ? 'describe' : 'reference';
  if (kind === 'locate') {
    // 16 items from 16 samples (index range 130000+), each a seeded object of its scene
    return Array.from({ length: 16 }, (_, k) => locateExample(policy, worldSample('train', 130000 + i * 16 + k, { frame: v }), i * 16 + k)).filter((e): e is NonNullable<typeof e> => e !== null);
  }
  if (kind === 'describe') return Array.from({ length: 8 }, (_, k) => describeExample(policy, worldSample('train', 90000 + i * 8 + k, { frame: v })));
  return Array.from({ length: 4 }, (_, k) => referenceExample(policy, worldSample('train', 50000 + i * 4 + k, { frame: v }), o.answerWeight, o.groundWeight));
}

/**
 * Run the phases, locate, describe, mixed, (each with a fresh AdamW, a 20-step warm-up, then constant lr) on the decoder;
 * the vision tower must already be frozen (setTrainable). Returns the final loss of each phase.
 */
export function alignPolicy(policy: Policy, opts: AlignOptions): { locateLoss: number; describeLoss: number; mixedLoss: number } {
  const o = { groundWeight: 10, answerWeight: 10, locateSteps: 0, ...opts };
  const locate = o.locateSteps > 0;
  const params = policy.model.trainableParameters();
  if ([...params.keys()].some(n => n.startsWith('visual.'))) throw new Error('alignPolicy: freeze the vision tower first (--freeze-encoder)');
  const result = { locateLoss: NaN, describeLoss: NaN, mixedLoss: NaN };
  for (const [phase, steps] of [['locate', o.locateSteps], ['describe', o.describeSteps], ['mixed', o.mixedSteps]] as const) {
    if (steps <= 0) continue;
    const opt = new AdamW({ lr: o.lr, weightDecay: 0.01 });
    const bar = new Progress(`policy align (${phase})`, steps);
    let ema = NaN;
    for (let i = 0; i < steps; i++) {
      const ex = stepBatch(policy, i, phase, { ...o, locate });
      // every step is applied (no finite-ness guards)
      const { loss } = optimizerStep(opt, params, () => weightedNll(policy, ex), { maxNorm: 1.0, lr: o.lr * warmup(i), guardLoss: false, guardNorm: false });
      ema = Number.isNaN(ema) ? loss : 0.98 * ema + 0.02 * loss;
      bar.tick(1, `loss ${ema.toFixed(4)}`);
      if (o.probe && ((i + 1) % o.probe.every === 0 || i + 1 === steps)) (o.log ?? console.log)(`policy align (${phase}) step ${i + 1}: loss ${ema.toFixed(4)} ${JSON.stringify(o.probe.run())}`);
    }
    opt.dispose();
    result[`${phase}Loss`] = ema;
  }
  return result;
}
