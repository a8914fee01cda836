/**
 * The trainer's rollout phase with rolloutBatch 'step' (all prompts x G rows in one batched decode,
 * src/rl/rollout.ts): it trains, is deterministic, leaks nothing, and greedy decoding gives exactly
 * the per-prompt path's responses; with a distributed section it is refused.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer } from '../src/rl/trainer.ts';
import { tinyPolicy, tinyScorer, worldDataset } from './helpers/world.ts';

const cfg = (outDir: string, extra: Record<string, unknown> = {}) => trainConfig({
  seed: 3, promptsPerStep: 2, samplesPerPrompt: 2, maxResponseTokens: 6, lr: 1e-3, steps: 2, checkpointEvery: 1, outDir, ...extra,
});

async function responses(extra: Record<string, unknown>): Promise<{ texts: string[]; loss: number; leak: number }> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-rb-'));
  const { policy, reference } = tinyPolicy(1);
  const scorer = tinyScorer();
  const t = new GrpoTrainer({ config: cfg(out, extra), policy, reference, scorer, data: worldDataset(8) });
  const prompts = await t.prompts();
  const n0 = tf.memory().numTensors;
  const r = await t.rollout(prompts);
  const leak = tf.memory().numTensors - n0;
  for (const p of prompts) p.pixels.dispose();
  prompts.forEach(p => p.embeds?.dispose());
  const log = await t.trainStep();
  policy.model.dispose(); reference.dispose(); scorer.dispose(); t.optimizer.dispose();
  return { texts: r.rollouts.map(x => x.text), loss: log.loss.total, leak };
}

test("rolloutBatch 'step' trains and is deterministic; no tensors leak", async () => {
  const a = await responses({ rolloutBatch: 'step' });
  const b = await responses({ rolloutBatch: 'step' });
  assert.equal(a.texts, b.texts);
  assert.is(a.loss, b.loss);
  assert.ok(Number.isFinite(a.loss));
  assert.is(a.leak, 0);
});

test("greedy: 'step' gives exactly the per-prompt rollouts", async () => {
  // temperature -> a one-hot distribution is not allowed (> 0), so compare with topK 1: every draw is the argmax
  const a = await responses({ rolloutBatch: 'step', topK: 1 });
  const b = await responses({ rolloutBatch: 'prompt', topK: 1 });
  assert.equal(a.texts, b.texts);
});

test("'step' with a distributed section is refused", () => {
  assert.throws(() => trainConfig({ rolloutBatch: 'step', distributed: {} }, 'run.json'), (e: Error) => e.message === "run.json: 'rolloutBatch' 'step' decodes all prompts of a step in one batch, which workers (one prompt each) cannot reproduce bit for bit; use 'prompt' with 'distributed'");
});

test.run();
