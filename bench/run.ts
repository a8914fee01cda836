/**
 * npm run bench [-- <section>...]   sections: backend, conv, clip, qwen, sam2, sam2train, grpo, world, world-batched,
 * crossover, rollout (default: all but world, world-batched, crossover and rollout). bench/compare.sh runs them on wasm and tensorflow side by side.
 * Prints one line per figure; BENCHMARKS.md records them with the machine.
 */
import * as os from 'node:os';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, wasmHeapBytes } from '../src/backend.ts';
import { VIT_B_32 } from '../src/models/clip/config.ts';
import { ClipModel } from '../src/models/clip/model.ts';
import { matmulGflops, timeMs } from '../src/util/timing.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { generate } from '../src/models/qwen2_5_vl/generate.ts';
import { SAM2_HIERA_L, SAM2_HIERA_T } from '../src/models/sam2/config.ts';
import { Sam2Image } from '../src/models/sam2/model.ts';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { worldClipConfig, worldQwenConfig, worldSam2Config, writeWorldTokenizer } from '../src/demo/models.ts';
import { worldTrainDataset } from '../src/data/world/dataset.ts';
import { ClipScorer } from '../src/models/clip/scorer.ts';
import { ClipTokenizer } from '../src/models/clip/tokenizer.ts';
import { PolicyTokenizer } from '../src/models/qwen2_5_vl/tokenizer.ts';
import { makePolicy } from '../src/pipeline/policy.ts';
import { trainConfig } from '../src/rl/config.ts';
import { GrpoTrainer } from '../src/rl/trainer.ts';
import { crossoverBench, qwen05Config, rolloutBench, worldBatchedStepBench, worldStepBench } from './sections.ts';

const sections = process.argv.slice(2).filter(a => a !== '--');
if (sections.includes('--help') || sections.includes('-h')) {
  console.log('usage: npm run bench [-- <section>...]\nsections: backend, conv, clip, qwen, sam2, sam2train, grpo (the default set), world, world-batched, crossover, rollout, realsize (docs/realsize.md; its own flags follow it)');
  process.exit(0);
}
if (sections[0] === 'realsize') {
  // the real-size stand-ins: a process of its own (tens of GiB, tens of minutes)
  const r = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', path.join(import.meta.dirname, 'realsize.ts'), ...sections.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const want = (s: string) => sections.includes(s) || (sections.length === 0 && !['world', 'world-batched', 'crossover', 'rollout'].includes(s));
const info = await initBackend({ quiet: true });
console.log(`# ${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}  backend ${info.name}`);

if (want('backend')) {
  for (const b of info.name === 'tensorflow' ? ['tensorflow'] : ['wasm', 'cpu']) {
    await tf.setBackend(b);
    const n = b === 'cpu' ? 512 : 1024;
    console.log(`backend ${b}: matmul ${n}^2 ${(await matmulGflops(n, b === 'cpu' ? 2 : 5)).toFixed(2)} GFLOP/s`);
    if (b === 'wasm' || b === 'tensorflow') {
      const x = tf.randomNormal([64, 512]);
      const w = tf.variable(tf.randomNormal([512, 512]));
      const ms = await timeMs(() => { tf.tidy(() => { tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(x, v)))(w).dataSync(); }); });
      console.log(`backend ${b}: matmul 64x512x512 forward+backward ${ms.toFixed(2)} ms`);
      x.dispose(); w.dispose();
    }
  }
  await tf.setBackend(info.name);
}

if (want('clip')) {
  const m = new ClipModel(VIT_B_32);
  for (const b of [1, 8]) {
    const px = tf.randomNormal([b, 3, 224, 224]) as tf.Tensor4D;
    const msI = await timeMs(() => { tf.tidy(() => { m.encodeImage(px).dataSync(); }); }, { reps: b === 1 ? 5 : 3 });
    px.dispose();
    const ids = tf.tensor2d(Int32Array.from({ length: b * 77 }, (_, i) => (i % 77 === 20 ? 49407 : i % 77 < 20 ? 1000 + i : 0)), [b, 77], 'int32');
    const msT = await timeMs(() => { tf.tidy(() => { m.encodeText(ids).dataSync(); }); }, { reps: 5 });
    ids.dispose();
    console.log(`clip ViT-B/32 batch ${b}: image encode ${msI.toFixed(0)} ms, text encode (77 tokens) ${msT.toFixed(0)} ms`);
  }
  m.dispose();
}

if (want('qwen')) {
  // a ~0.5B-parameter decoder: Qwen2.5-0.5B's text sizes (vocab trimmed to fit the wasm heap), a small vision tower
  const vocab = Number(process.env.BENCH_QWEN_VOCAB ?? 32768);
  const cfg = qwen05Config(vocab);
  const m = new Qwen2_5_VL(cfg);
  const params = [...m.model.namedParameters().values()].reduce((a, v) => a + v.size, 0);
  const prompt = 128;
  const ids = Int32Array.from({ length: prompt }, (_, i) => (i * 7919) % vocab);
  const pre = await timeMs(() => { const o = m.forward({ ids, batch: 1, length: prompt, positions: 'last' }); o.logits.dataSync(); o.logits.dispose(); }, { reps: 3 });
  console.log(`qwen decoder ${(params / 1e6).toFixed(0)}M params (vocab ${vocab}): prefill ${prompt} tokens ${pre.toFixed(0)} ms = ${(prompt / pre * 1000).toFixed(1)} tokens/s`);
  for (const useCache of [true, false]) {
    const n = useCache ? Number(process.env.BENCH_QWEN_TOKENS ?? 32) : Number(process.env.BENCH_QWEN_NOCACHE_TOKENS ?? 8);
    // each decode step timed on its own (onStep): the median is robust to the load spikes of a shared machine
    const stamps: number[] = [];
    const t0 = performance.now();
    generate(m, { ids, batch: 1, length: prompt, maxNewTokens: n, greedy: true, useCache, onStep: () => stamps.push(performance.now()) });
    const steps = stamps.slice(1).map((t, i) => t - stamps[i]).sort((a, b) => a - b);
    const med = steps[Math.floor(steps.length / 2)];
    const mean = (stamps[stamps.length - 1] - stamps[0]) / steps.length;
    console.log(`qwen decode ${useCache ? 'with' : 'without'} cache: median ${med.toFixed(0)} ms/token = ${(1000 / med).toFixed(2)} tokens/s (mean ${mean.toFixed(0)}, min ${steps[0].toFixed(0)} over ${steps.length} steps; first step with prefill ${(stamps[0] - t0).toFixed(0)} ms; batch 1, prompt ${prompt})`);
  }
  m.dispose();
}

if (want('conv') && info.name === 'wasm') {
  // the filter gradient of SAM2's 7x7 stride-4 patch embedding (demo size, batch 8 at 128 px):
  // the im2col + wasm matmul kernel against the cpu kernel the bridge would run
  const cpu = tf.findBackend('cpu')!;
  const cpuKernel = tf.getKernel('Conv2DBackpropFilter', 'cpu')!;
  const x = tf.randomNormal([8, 128, 128, 3]) as tf.Tensor4D;
  const f = tf.randomNormal([7, 7, 3, 16]) as tf.Tensor4D;
  const dy = tf.randomNormal(tf.conv2d(x, f, 4, 3).shape);
  const fast = await timeMs(() => { tf.tidy(() => { tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, 4, 3), dy)))(f).dataSync(); }); }, { reps: 5 });
  const put = (t: tf.Tensor) => ({ dataId: cpu.write(t.dataSync().slice(), t.shape, 'float32'), shape: t.shape, dtype: 'float32' as const });
  const slow = await timeMs(() => {
    const ins = { x: put(x), dy: put(dy) };
    const o = cpuKernel.kernelFunc({ inputs: ins, attrs: { strides: 4, pad: 3, dataFormat: 'NHWC', filterShape: [7, 7, 3, 16] }, backend: cpu }) as tf.TensorInfo;
    cpu.readSync(o.dataId);
    for (const t of [ins.x, ins.dy, o]) cpu.disposeData(t.dataId);
  }, { reps: 2 });
  console.log(`conv2d filter gradient 7x7/4, [8,128,128,3] -> 16: im2col + wasm matmul (forward included) ${fast.toFixed(0)} ms, cpu kernel (bridged before) ${slow.toFixed(0)} ms, ${(slow / fast).toFixed(1)}x`);
  tf.dispose([x, f, dy]);
}

if (want('sam2train')) {
  // one pretraining step of the demo segmenter: encode + decode (4 mask tokens) + backward, batch 8
  // at 128 px, the size of the figures in BENCHMARKS.md (the shipped demo runs at 192)
  const m = new Sam2Image({ ...worldSam2Config('demo'), image_size: 128 });
  const vars = [...m.trainableParameters().values()];
  const px = tf.randomNormal([8, 3, 128, 128]) as tf.Tensor4D;
  const boxes = tf.tensor2d(Array.from({ length: 8 }, () => [10, 10, 60, 60]));
  const ms = await timeMs(() => {
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(m.decode(m.encodeImage(px), { boxes }, 'all').lowResMasks) as tf.Scalar), vars);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  }, { reps: 3 });
  console.log(`sam2 demo (128 px) forward + backward, batch 8: ${ms.toFixed(0)} ms`);
  tf.dispose([px, boxes]);
  m.dispose();
}

if (want('sam2')) {
  // each size in a process of its own: after hiera-tiny the wasm heap is too fragmented for hiera-large
  for (const name of ['hiera-tiny', 'hiera-large']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', process.argv[1], `sam2:${name}`], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
    process.stdout.write(r.stdout.split('\n').filter(l => l.startsWith('sam2 ')).join('\n') + '\n');
    if (r.status !== 0) console.log(`sam2 ${name} @1024: failed (exit ${r.status ?? r.signal})`);
  }
}
for (const [name, cfg] of [['hiera-tiny', SAM2_HIERA_T], ['hiera-large', SAM2_HIERA_L]] as const) {
  if (!sections.includes(`sam2:${name}`)) continue;
  {
    const m = new Sam2Image(cfg);
    const px = tf.randomNormal([1, 3, 1024, 1024]) as tf.Tensor4D;
    let feats: ReturnType<typeof m.encodeImage>;
    // hiera-large: the one encode is timed (no warm-up), so the run stays within the heap and minutes
    if (name === 'hiera-tiny') {
      feats = m.encodeImage(px);
      tf.dispose([feats.imageEmbed, feats.highRes0, feats.highRes1]);
    }
    const enc = await timeMs(() => {
      feats = m.encodeImage(px);
      feats.imageEmbed.dataSync();
      tf.dispose([feats.imageEmbed, feats.highRes0, feats.highRes1]);
    }, { reps: 1, warmup: 0 });
    feats = m.encodeImage(px);
    const boxes = tf.tensor2d([[100, 120, 600, 700]]);
    const pts = tf.tensor3d([[[300, 400], [350, 420]]]);
    const dec = await timeMs(() => { tf.tidy(() => { m.decode(feats, { boxes, pointCoords: pts, pointLabels: Int32Array.from([1, 1]) }, true).lowResMasks.dataSync(); }); }, { reps: 5 });
    const heap = wasmHeapBytes();
    const heapNote = heap === null ? '' : `, wasm heap ${(heap / 2 ** 30).toFixed(2)} GiB of 4`;
    console.log(`sam2 ${name} @1024: encode ${enc.toFixed(0)} ms, decode (box + 2 points, multimask) ${dec.toFixed(0)} ms, ${(m.parameterCount() / 1e6).toFixed(1)}M image-path params${heapNote}`);
    tf.dispose([px, boxes, pts, feats.imageEmbed, feats.highRes0, feats.highRes1]);
    m.dispose();
  }
}

if (want('grpo')) {
  // the demo-size policy and scorer with random weights, 2 prompts x 4 samples, 32 response tokens
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-bench-'));
  const tok = writeWorldTokenizer(dir);
  const cfg = worldQwenConfig(tok, 'demo');
  const policy = makePolicy(new Qwen2_5_VL(cfg), PolicyTokenizer.load(dir), { viewSize: 112 });
  const reference = new Qwen2_5_VL(cfg);
  const ex = policy.model.exportTensors(); reference.load(ex); tf.dispose([...ex.values()]);
  const vocab = process.env.CLIP_VOCAB ?? '../shared/fixtures/clip-tiny-openai/bpe_simple_vocab_16e6.txt.gz';
  const scorer = new ClipScorer(new ClipModel(worldClipConfig('demo')), ClipTokenizer.fromBpeFile(vocab));
  const t = new GrpoTrainer({ config: trainConfig({ promptsPerStep: 2, samplesPerPrompt: 4, maxResponseTokens: 32, microBatch: 4, steps: 3, outDir: dir }), policy, reference, scorer, data: worldTrainDataset(16, 112) });
  await t.trainStep();
  for (let i = 0; i < 2; i++) {
    const l = await t.trainStep();
    const s = l.seconds;
    console.log(`grpo step (demo policy ${(policy.model.parameterCount() / 1e6).toFixed(2)}M params, 2x4 rollouts, <=32 tokens): ${s.total.toFixed(2)} s = rollout ${s.rollout.toFixed(2)} + reward ${s.reward.toFixed(2)} + forward-backward ${s.forwardBackward.toFixed(2)} + optimizer ${s.optimizer.toFixed(2)}; ${l.tokensPerSecond.toFixed(0)} generated tokens/s`);
  }
}

if (want('world')) await worldStepBench(info.name, Number(process.env.BENCH_WORLD_STEPS ?? 2));
if (want('world-batched')) {
  // the step with src/rl/rollout.ts's batched rollout; on a native process both placements of the rollout
  for (const where of info.name === 'tensorflow' ? ['phase', 'current'] : ['current']) await worldBatchedStepBench(info.name, Number(process.env.BENCH_WORLD_STEPS ?? 2), where);
}
if (want('crossover')) await crossoverBench(info.name);
if (want('rollout')) await rolloutBench(info.name);
