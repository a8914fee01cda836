/** bench/run.ts sections for the native-vs-wasm comparison (issue 18): the world GRPO step and the per-op crossover. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { worldSample } from '../src/data/world/generator.ts';
import { QWEN2_5_VL_3B, type QwenConfig } from '../src/models/qwen2_5_vl/config.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { generate } from '../src/models/qwen2_5_vl/generate.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadScorerFrom } from '../src/pipeline/bundle.ts';
import { readTrainConfig } from '../src/rl/config.ts';
import { GrpoTrainer, type TrainDataset } from '../src/rl/trainer.ts';
import { batchedRollout } from '../src/rl/rollout.ts';
import { timeMs } from '../src/util/timing.ts';

/**
 * One GRPO step of `npm run train` (examples/configs/world.json: 4 prompts x 4 samples, <= 128 tokens)
 * with the shipped demo weights (realistic values: the random weights of the grpo section produce
 * subnormal gradients that slow wasm matmuls up to 120x). One warm-up step, then `steps` timed.
 */
export async function worldStepBench(backend: string, steps: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-bench-world-'));
  const cfg = { ...readTrainConfig('examples/configs/world.json'), steps: steps + 1, outDir: dir, checkpointEvery: 1000 };
  const policy = loadPolicyFrom(DEFAULT_WEIGHTS);
  const scorer = loadScorerFrom(DEFAULT_WEIGHTS);
  const reference = new Qwen2_5_VL(policy.model.config);
  const ex = policy.model.exportTensors();
  reference.load(ex);
  tf.dispose([...ex.values()]);
  const frame = policy.viewSize;
  const data: TrainDataset = { size: 512, get: i => { const s = worldSample('train', i, { frame }); return { image: s.image, query: s.query, solution: s.solution }; } };
  const t = new GrpoTrainer({ config: cfg, policy, reference, scorer, data });
  await t.trainStep();
  for (let i = 0; i < steps; i++) {
    const l = await t.trainStep();
    const s = l.seconds;
    console.log(`world grpo step (${backend}; demo weights, ${cfg.promptsPerStep}x${cfg.samplesPerPrompt} rollouts, <=${cfg.maxResponseTokens} tokens, mean ${l.responseLength.mean.toFixed(0)}): ${s.total.toFixed(2)} s = rollout ${s.rollout.toFixed(2)} + reward ${s.reward.toFixed(2)} + forward-backward ${s.forwardBackward.toFixed(2)} + optimizer ${s.optimizer.toFixed(2)}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * The world GRPO step with the batched rollout (src/rl/rollout.ts: all 4 x 4 rows in one decode) in
 * place of the trainer's per-prompt rollout, on `where` ('phase': the backend backendForPhase picks,
 * wasm for the demo policy in a native process; 'current': the process's backend). The trainer's
 * other phases run as trainStep runs them. One warm-up step, then `steps` timed.
 */
export async function worldBatchedStepBench(backend: string, steps: number, where: string): Promise<void> {
  const seedrandom = (await import('seedrandom')).default;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-bench-world-'));
  const cfg = { ...readTrainConfig('examples/configs/world.json'), steps: steps + 1, outDir: dir, checkpointEvery: 1000 };
  const policy = loadPolicyFrom(DEFAULT_WEIGHTS);
  const scorer = loadScorerFrom(DEFAULT_WEIGHTS);
  const reference = new Qwen2_5_VL(policy.model.config);
  const ex = policy.model.exportTensors();
  reference.load(ex);
  tf.dispose([...ex.values()]);
  const frame = policy.viewSize;
  const data: TrainDataset = { size: 512, get: i => { const s = worldSample('train', i, { frame }); return { image: s.image, query: s.query, solution: s.solution }; } };
  const t = new GrpoTrainer({ config: cfg, policy, reference, scorer, data });
  const rng = seedrandom(String(cfg.seed));
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const prompts = await t.prompts();
    const r = await batchedRollout(policy, prompts, { ...cfg, rng, stopTokens: policy.stopTokens, backend: where });
    const t1 = performance.now();
    await t.score(prompts, r.rollouts);
    const adv = t.advantages(r.rollouts);
    const t2 = performance.now();
    const pg = t.gradients(prompts, r.rollouts, adv);
    const t3 = performance.now();
    t.update(pg);
    const t4 = performance.now();
    for (const p of prompts) tf.dispose([p.pixels, ...(p.embeds ? [p.embeds] : [])]);
    const mean = r.generated / r.rollouts.length;
    const sec = (a: number, b: number) => ((b - a) / 1000).toFixed(2);
    if (i > 0) console.log(`world grpo step, batched rollout (${backend} process, rollout on ${r.backend}; demo weights, ${cfg.promptsPerStep}x${cfg.samplesPerPrompt} rows in one decode, <=${cfg.maxResponseTokens} tokens, mean ${mean.toFixed(0)}): ${sec(t0, t4)} s = rollout ${sec(t0, t1)} + reward ${sec(t1, t2)} + forward-backward ${sec(t2, t3)} + optimizer ${sec(t3, t4)}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Qwen2.5-0.5B's text sizes (vocab trimmed to fit the wasm heap), a small vision tower: bench/run.ts qwen. */
export function qwen05Config(vocab: number): QwenConfig {
  return {
    ...QWEN2_5_VL_3B, vocab_size: vocab, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14,
    num_key_value_heads: 2, mrope_section: [16, 24, 24], tie_word_embeddings: true,
    vision_config: { ...QWEN2_5_VL_3B.vision_config, depth: 2, hidden_size: 64, intermediate_size: 128, num_heads: 2, out_hidden_size: 896 },
  };
}

/** A Qwen2-shaped decoder of width h (head dim 32 or 64, 4 layers, vocab 4096, a 1-block vision tower). */
export function decoderOfWidth(h: number, layers = 4): QwenConfig {
  const headDim = h >= 256 ? 64 : 32;
  const heads = h / headDim;
  const kv = heads >= 4 ? heads / 2 : heads;
  const sec = headDim / 2;
  const t = Math.floor(sec / 4) * 2;
  const hw = (sec - t) / 2;
  return {
    ...QWEN2_5_VL_3B, vocab_size: 4096, hidden_size: h, intermediate_size: 3 * h, num_hidden_layers: layers, num_attention_heads: heads,
    num_key_value_heads: kv, mrope_section: [t, Math.ceil(hw), Math.floor(hw)], tie_word_embeddings: true,
    vision_config: { ...QWEN2_5_VL_3B.vision_config, depth: 1, hidden_size: 32, intermediate_size: 64, num_heads: 1, out_hidden_size: h, fullatt_block_indexes: [0] },
  };
}

/**
 * Per-op cost against arithmetic: a cached decode step (batch 1 and batch 16) and a forward+backward
 * (batch 4 x 128 tokens) of decoders from 0.4M to 60M parameters. Where wasm wins, per-op cost dominates.
 */
export async function crossoverBench(backend: string): Promise<void> {
  for (const h of [64, 128, 256, 512, 1024]) {
    const m = new Qwen2_5_VL(decoderOfWidth(h));
    const params = [...m.model.namedParameters().values()].reduce((a, v) => a + v.size, 0);
    const line: string[] = [];
    for (const batch of [1, 16]) {
      const prompt = 32;
      const n = 16;
      const ids = Int32Array.from({ length: batch * prompt }, (_, i) => (i * 7919) % 4096);
      const run = (k: number) => generate(m, { ids, batch, length: prompt, maxNewTokens: k, greedy: true, useCache: true });
      const one = await timeMs(() => { run(1); }, { reps: 3 });
      const many = await timeMs(() => { run(n); }, { reps: 1 });
      line.push(`decode batch ${batch} ${((many - one) / (n - 1)).toFixed(1)} ms/step`);
    }
    const vars = [...m.model.namedParameters().values()].filter(v => v instanceof tf.Variable) as tf.Variable[];
    const ids = Int32Array.from({ length: 4 * 128 }, (_, i) => (i * 31) % 4096);
    const fb = await timeMs(() => {
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(m.forward({ ids, batch: 4, length: 128 }).logits) as tf.Scalar), vars.length ? vars : undefined);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    }, { reps: 3 });
    line.push(`forward+backward 4x128 ${fb.toFixed(0)} ms`);
    console.log(`crossover (${backend}) decoder h=${h} ${(params / 1e6).toFixed(2)}M params: ${line.join(', ')}`);
    m.dispose();
  }
}

/**
 * The world step's rollout alone (4 prompts x 4 samples, <= 128 tokens, demo weights, as the trainer
 * runs it: one generate per prompt), on the process's backend and, on a native process, switched to
 * wasm for the phase with onBackend (weights move over on first use and back afterwards).
 */
export async function rolloutBench(backend: string): Promise<void> {
  const { onBackend, backendForPhase } = await import('../src/backend.ts');
  const { encodePrompt } = await import('../src/pipeline/policy.ts');
  const seedrandom = (await import('seedrandom')).default;
  const cfg = readTrainConfig('examples/configs/world.json');
  const policy = loadPolicyFrom(DEFAULT_WEIGHTS);
  const model = policy.model;
  const prompts = Array.from({ length: cfg.promptsPerStep }, (_, i) => {
    const s = worldSample('train', i, { frame: policy.viewSize });
    return encodePrompt(policy, s.image, s.query, cfg.rewards.variant);
  });
  const rollout = () => {
    const rng = seedrandom('bench');
    let tokens = 0;
    for (const pr of prompts) {
      const G = cfg.samplesPerPrompt;
      const ids = new Int32Array(G * pr.ids.length);
      for (let g = 0; g < G; g++) ids.set(pr.ids, g * pr.ids.length);
      const px = tf.tile(pr.pixelValues, [G, 1]) as tf.Tensor2D;
      const gen = generate(model, { ids, batch: G, length: pr.ids.length, pixelValues: px, grids: new Array(G).fill(pr.grid), maxNewTokens: cfg.maxResponseTokens, temperature: cfg.temperature, rng, stopTokens: policy.stopTokens });
      px.dispose();
      tokens += gen.tokens.reduce((a, t) => a + t.length, 0);
    }
    return tokens;
  };
  const params = model.parameterCount();
  const targets = backend === 'tensorflow' ? ['tensorflow', 'wasm'] : [backend];
  for (const target of targets) {
    await onBackend(target, () => { rollout(); });
    const t0 = performance.now();
    const n = await onBackend(target, rollout);
    const s = (performance.now() - t0) / 1000;
    console.log(`world rollout, per prompt (${backend} process, run on ${target}${target !== backend ? ' via onBackend' : ''}; demo policy ${(params / 1e6).toFixed(2)}M, ${cfg.promptsPerStep}x${cfg.samplesPerPrompt}, <=${cfg.maxResponseTokens} tokens): ${s.toFixed(2)} s, ${n} tokens`);
  }
  // src/rl/rollout.ts: all prompts x samples in one left-padded decode, each row its own RNG stream
  const rp = prompts.map(p => ({ ids: p.ids, pixels: p.pixelValues, grid: p.grid, embeds: null }));
  for (const target of targets) {
    const go = () => batchedRollout(policy, rp, { ...cfg, rng: seedrandom('bench'), stopTokens: policy.stopTokens, backend: target });
    await go();
    const t0 = performance.now();
    const r = await go();
    const s = (performance.now() - t0) / 1000;
    console.log(`world rollout, batched (${backend} process, run on ${r.backend}; ${cfg.promptsPerStep * cfg.samplesPerPrompt} rows in one decode, <=${cfg.maxResponseTokens} tokens): ${s.toFixed(2)} s, ${r.generated} tokens`);
  }
  console.log(`backendForPhase({ parameters: ${params}, phase: 'decode', batch: ${cfg.samplesPerPrompt} }) = ${backendForPhase({ parameters: params, phase: 'decode', batch: cfg.samplesPerPrompt })}`);
}
