/**
 * DPAD_BACKEND=tensorflow npx tsx bench/realsize.ts [--dir /tmp/realsize] [--weights <dir>] [--stages segment,eval4,lora-step]
 *     [--max-new-tokens 16] [--response 8] [--plan]
 *
 * The real-size models end to end on one machine (issue 21): makes or reuses the random-weight
 * stand-ins of Qwen2.5-VL-3B, SAM 2.1 hiera-large and CLIP ViT-B/32 (tools/make-checkpoint.ts),
 * converts them, loads the three together, runs segment() on a COCO photo, one batched
 * evaluation of 4 COCO samples (IoU against their masks, CLIP S1/S2 on the GT box), and one LoRA
 * GRPO step (G = 2, the checkpointed gradient pass). One line per stage:
 *     realsize <stage>: <seconds> s, peak rss <GiB> GiB
 * (peak rss = /proc/self/status VmHWM so far), then `realsize: ok`; then the 7B memory plan.
 * Random weights never emit a stop token, so responses run to the caps and do not parse: segment()
 * then has no mask, and the segment stage also runs SAM2 on the sample's GT box to give one at
 * the photo's size. --weights uses a converted weights directory as is (e.g. a 2-layer policy for
 * a quick run); --plan prints the memory plan only.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend.ts';
import { loadImage } from '../src/io/image.ts';
import type { ImageU8 } from '../src/io/resample.ts';
import { qwenConfigFrom, type QwenConfig } from '../src/models/qwen2_5_vl/config.ts';
import { MemoryPeak } from '../src/models/qwen2_5_vl/checkpointed.ts';
import { generate, type SequenceBatch } from '../src/models/qwen2_5_vl/generate.ts';
import { applyLora, loraParameters } from '../src/models/qwen2_5_vl/lora.ts';
import { Sam2Predictor } from '../src/models/sam2/predictor.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { applyGradients } from '../src/optim/step.ts';
import { boxToView, frameOf } from '../src/pipeline/frame.ts';
import { loadWeights, type WeightsBundle } from '../src/pipeline/bundle.ts';
import { encodePrompt } from '../src/pipeline/policy.ts';
import { QWEN2_5_VL_3B_HUB_CONFIG, QWEN2_5_VL_7B_HUB_CONFIG, qwenTensors } from '../src/realsize/qwen.ts';
import { groupAdvantages } from '../src/rl/advantages.ts';
import { policyGradients } from '../src/rl/update.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const SHARED = path.join(ROOT, '..', 'shared');
const COCO = path.join(SHARED, 'real-data', 'coco');
const GiB = 2 ** 30;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const has = (name: string) => process.argv.includes(`--${name}`);

/** VmHWM / VmRSS of this process in bytes */
function rss(): { peak: number; now: number } {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { peak: kb('VmHWM'), now: kb('VmRSS') };
}
const g2 = (b: number) => (b / GiB).toFixed(2);

async function stage<T>(name: string, fn: () => Promise<T> | T, detail?: (r: T) => string): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  const s = (performance.now() - t0) / 1000;
  const m = rss();
  console.log(`realsize ${name}: ${s.toFixed(1)} s, peak rss ${g2(m.peak)} GiB${detail ? `  (${detail(r)}; rss now ${g2(m.now)} GiB, tensors ${g2(tf.memory().numBytes)} GiB)` : ''}`);
  return r;
}

function tsx(args: string[]): void {
  console.log(`realsize: npx tsx ${args.join(' ')}`);
  const r = spawnSync('npx', ['tsx', ...args], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`realsize: 'npx tsx ${args.join(' ')}' failed (exit ${r.status})`);
}

/** The converted weights directory <dir>/weights-3b, making and converting whatever stand-in is missing. */
function standIns(dir: string): string {
  const w = path.join(dir, 'weights-3b');
  const qwenHub = path.join(dir, 'Qwen2.5-VL-3B-Instruct');
  const samPt = path.join(dir, 'sam2.1_hiera_large.pt');
  const clipHub = path.join(dir, 'clip-vit-base-patch32');
  const ready = (p: string) => fs.existsSync(path.join(p, 'config.json'));
  if (!ready(path.join(w, 'policy'))) {
    if (!ready(qwenHub)) tsx(['tools/make-checkpoint.ts', 'qwen2_5_vl-3b', '--out', qwenHub, '--tokenizer', path.join(SHARED, 'fixtures', 'qwen2_5_vl-tokenizer')]);
    tsx(['tools/convert-qwen2_5_vl.ts', '--from', qwenHub, '--out', path.join(w, 'policy')]);
  }
  if (!ready(path.join(w, 'sam2'))) {
    if (!fs.existsSync(samPt)) tsx(['tools/make-checkpoint.ts', 'sam2.1_hiera_l', '--out', samPt]);
    tsx(['tools/convert-sam2.ts', '--from', samPt, '--out', path.join(w, 'sam2')]);
  }
  if (!ready(path.join(w, 'clip'))) {
    if (!ready(clipHub)) tsx(['tools/make-checkpoint.ts', 'clip-vit-base-patch32', '--out', clipHub, '--vocab', path.join(SHARED, 'fixtures', 'clip-tiny-hf', 'bpe_simple_vocab_16e6.txt.gz')]);
    tsx(['tools/convert-clip.ts', '--from', clipHub, '--out', path.join(w, 'clip')]);
  }
  return w;
}

interface Sample { id: string; image: ImageU8; mask: Uint8Array; query: string }

/** 4 COCO samples: photo, GT mask (0/255 PNG at the photo's size) and a query naming the object */
async function cocoSamples(): Promise<Sample[]> {
  const picks: [string, string, string][] = [
    ['000000039769.png', '000000039769_2190839.png', 'the cat lying on the left'],
    ['000000142238.jpg', '000000142238_16757838.png', 'the ball the players are reaching for'],
    ['000000439180.jpg', '000000439180_6094848.png', 'the truck behind the riders'],
    ['000000039769.png', '000000039769_1108446.png', 'the remote control on the right'],
  ];
  const out: Sample[] = [];
  for (const [img, m, query] of picks) {
    const image = await loadImage(path.join(COCO, 'images', img));
    const mi = await loadImage(path.join(COCO, 'masks', m));
    if (mi.width !== image.width || mi.height !== image.height) throw new Error(`${m}: mask ${mi.width}x${mi.height}, photo ${image.width}x${image.height}`);
    const mask = new Uint8Array(image.width * image.height);
    for (let i = 0; i < mask.length; i++) mask[i] = mi.data[i * 3] > 127 ? 1 : 0;
    out.push({ id: m.replace('.png', ''), image, mask, query });
  }
  return out;
}

function gtBox(mask: Uint8Array, W: number, H: number): [number, number, number, number] {
  let x1 = W, y1 = H, x2 = -1, y2 = -1;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (mask[y * W + x]) { x1 = Math.min(x1, x); y1 = Math.min(y1, y); x2 = Math.max(x2, x); y2 = Math.max(y2, y); }
  return [x1, y1, x2 + 1, y2 + 1];
}

function iou(pred: Uint8Array | null, gt: Uint8Array): { i: number; u: number } {
  let i = 0, u = 0;
  for (let k = 0; k < gt.length; k++) { const p = pred ? pred[k] > 0 : false; const t = gt[k] > 0; if (p && t) i++; if (p || t) u++; }
  return { i, u };
}

async function segmentStage(b: WeightsBundle, s: Sample, maxNewTokens: number): Promise<string> {
  const r = await b.segmenter.segment(s.image, s.query, { maxNewTokens });
  if (r.width !== s.image.width || r.height !== s.image.height) throw new Error(`segment: result ${r.width}x${r.height} for a ${s.image.width}x${s.image.height} photo`);
  // a random policy's text does not parse: SAM2 on the GT box gives the mask at the photo's size
  const pred = new Sam2Predictor(b.sam);
  try {
    pred.setImage(s.image);
    const p = pred.predict({ box: gtBox(s.mask, s.image.width, s.image.height), multimask: true });
    const best = p.scores.indexOf(Math.max(...p.scores));
    if (p.masks[best].length !== s.image.width * s.image.height) throw new Error(`sam2: mask of ${p.masks[best].length} pixels for ${s.image.width}x${s.image.height}`);
    const o = iou(p.masks[best], s.mask);
    return `${r.generatedTokens} tokens, ${r.mask ? 'mask' : `no mask: ${r.reason}`}; SAM2-L on the GT box: ${s.image.width}x${s.image.height} mask, IoU ${(o.i / o.u).toFixed(3)}`;
  } finally {
    pred.dispose();
  }
}

async function eval4Stage(b: WeightsBundle, samples: Sample[], maxNewTokens: number): Promise<string> {
  const rs = await b.segmenter.segmentBatch(samples.map(s => ({ image: s.image, query: s.query })), { batchSize: 4, maxNewTokens });
  let I = 0, U = 0, giou = 0;
  const clip: string[] = [];
  for (const [k, s] of samples.entries()) {
    const o = iou(rs[k].mask, s.mask);
    I += o.i; U += o.u; giou += o.u ? o.i / o.u : 0;
    if (b.scorer && rs[k].viewImage) {
      const v = b.segmenter.policy.viewSize;
      const box = boxToView(gtBox(s.mask, s.image.width, s.image.height), frameOf(s.image, v));
      const [sc] = await b.scorer.scores(rs[k].viewImage!, box, [rs[k].text], { truncate: true });
      if (sc) clip.push(sc.s1.toFixed(3));
    }
  }
  return `4 samples in one batch, gIoU ${(giou / 4).toFixed(3)}, cIoU ${(U ? I / U : 0).toFixed(3)}, CLIP S1 ${clip.join('/') || 'n/a'}`;
}

/** One LoRA GRPO step: G = 2 sampled responses to one prompt, the checkpointed gradient pass, AdamW on the adapters. */
async function loraStage(b: WeightsBundle, s: Sample, responseCap: number): Promise<string> {
  const policy = b.segmenter.policy;
  const model = policy.model;
  applyLora(model, { r: 8, alpha: 16, seed: 0 });
  const G = 2;
  const enc = encodePrompt(policy, s.image, s.query);
  const P = enc.ids.length;
  const emb = tf.tidy(() => model.visual.forward(enc.pixelValues, [enc.grid])); // the frozen tower, once
  enc.pixelValues.dispose();
  const embG = tf.concat(Array(G).fill(emb), 0) as tf.Tensor2D;
  try {
    const ids = new Int32Array(G * P);
    for (let g = 0; g < G; g++) ids.set(enc.ids, g * P);
    const gen = generate(model, {
      ids, batch: G, length: P, attentionMask: new Int32Array(G * P).fill(1), imageEmbeds: embG, grids: [enc.grid, enc.grid],
      maxNewTokens: responseCap, greedy: false, temperature: 1, seed: 'realsize', stopTokens: policy.stopTokens,
    });
    const R = Math.max(...gen.tokens.map(t => t.length));
    const L = P + R;
    const seqIds = new Int32Array(G * L).fill(model.config.pad_token_id);
    const att = new Int32Array(G * L);
    const mask = new Float32Array(G * R);
    gen.tokens.forEach((t, g) => {
      seqIds.set(enc.ids, g * L);
      seqIds.set(t, g * L + P);
      att.fill(1, g * L, g * L + P + t.length);
      mask.fill(1, g * R, g * R + t.length);
    });
    // random weights: the format rewards are 0 for every response; a stand-in reward that differs within the group
    const texts = gen.tokens.map(t => policy.tokenizer.decode(t, true));
    const rewards = texts.map((t, g) => (t.length % 7) / 7 + 0.1 * g);
    const adv = groupAdvantages(rewards, [0, 0]);
    const D = model.config.hidden_size;
    const pack = (start: number, size: number) => {
      const seq: SequenceBatch = {
        ids: seqIds.slice(start * L, (start + size) * L), batch: size, promptLength: P, responseLength: R, attentionMask: att.slice(start * L, (start + size) * L),
        grids: Array(size).fill(enc.grid), imageEmbeds: size === 1 ? emb : (embG.slice([0, 0], [emb.shape[0] * size, D]) as tf.Tensor2D),
      };
      return { seq, mask: mask.slice(start * R, (start + size) * R), advantages: adv.slice(start, start + size), dispose: () => { if (seq.imageEmbeds !== emb) seq.imageEmbeds?.dispose(); } };
    };
    const mem = new MemoryPeak();
    const before = tf.memory().numBytes;
    const pg = policyGradients(model, 'adapters-off', G, pack, { clipRatio: 0.2, entropyCoef: 0, klCoef: 0.04, klType: 'low_var_kl', temperature: 1, microBatch: 1 }, { checkpointed: true, memory: mem });
    const params = loraParameters(model);
    const opt = new AdamW({ lr: 1e-5 });
    const step = applyGradients(opt, params, pg.grads, { maxNorm: 1, skip: pg.nonFinite });
    return `P ${P} + R ${R} tokens, G ${G}, micro-batch 1, ${params.size} adapter tensors; loss ${pg.loss.toExponential(3)}, grad norm ${step.gradNorm.toExponential(3)}${step.skipped ? `, skipped: ${step.skipped}` : ''}; `
      + `gradient pass peak ${g2(mem.peakBytes - before)} GiB of tensors above the weights (sampled)`;
  } finally {
    tf.dispose([emb, embG]);
  }
}

/** parameter counts of a Qwen2.5-VL config: decoder, vision, total */
function qwenCounts(raw: Record<string, unknown>): { decoder: number; vision: number; total: number; config: QwenConfig } {
  let vision = 0, decoder = 0;
  for (const p of qwenTensors(raw)) { const n = p.shape.reduce((a, d) => a * d, 1); if (p.key.startsWith('visual.')) vision += n; else decoder += n; }
  return { decoder, vision, total: decoder + vision, config: qwenConfigFrom(raw) };
}

/**
 * The memory plan of a policy size (bytes): weights at f32 / bf16, the KV cache of G = 8 rollouts of
 * 1,300 tokens, and a LoRA step with the checkpointed pass (kept layer inputs + one layer's taped
 * activations + adapters with AdamW moments); activations are estimated (marked so), not measured.
 */
export function memoryPlan(raw: Record<string, unknown>, o: { prompt?: number; response?: number; rollouts?: number; rollout?: number; r?: number } = {}) {
  const { total, decoder, vision, config: c } = qwenCounts(raw);
  const L = (o.prompt ?? 1100) + (o.response ?? 200);
  const D = c.hidden_size, I = c.intermediate_size, H = c.num_attention_heads, N = c.num_hidden_layers;
  const hd = D / H, kvD = c.num_key_value_heads * hd;
  const tied = c.tie_word_embeddings ? c.vocab_size * D : 0;
  const kv = (bytes: number) => 2 * N * kvD * (o.rollout ?? 1300) * (o.rollouts ?? 8) * bytes;
  const r = o.r ?? 8;
  const adapters = N * r * (2 * (D + D) + 2 * (D + kvD) + 3 * (D + I)); // q, o: D->D; k, v: D->kvD; gate, up: D->I, down: I->D
  // one decoder layer's taped activations at batch 1: projections, rotary temporaries, scores (x4), MLP (x5)
  const layerAct = (bytes: number) => bytes * L * (8 * D + 4 * kvD + 5 * I + 4 * H * L);
  const step = (bytes: number) => ({ kept: N * L * D * bytes, layer: layerAct(bytes), adapters: adapters * 4 * 4 /* f32 weights, grads, 2 moments */ });
  return { total, decoder, vision, tiedHeadCopy: tied, f32: total * 4, bf16: total * 2, kvF32: kv(4), kvBf16: kv(2), stepF32: step(4), stepBf16: step(2), L, N };
}

function printPlan(name: string, raw: Record<string, unknown>, measured: boolean): void {
  const p = memoryPlan(raw);
  const s4 = p.stepF32, s2 = p.stepBf16;
  console.log(`realsize ${name} plan: ${(p.total / 1e9).toFixed(2)}B parameters (decoder ${(p.decoder / 1e9).toFixed(2)}B, vision ${(p.vision / 1e9).toFixed(2)}B); weights f32 ${g2(p.f32)} GiB, bf16 ${g2(p.bf16)} GiB${p.tiedHeadCopy ? `, + ${g2(p.tiedHeadCopy * 4)} GiB held tied-head copy (wasm/cpu only)` : ''}`);
  console.log(`realsize ${name} plan (extrapolated): KV cache for 8 rollouts x 1300 tokens f32 ${g2(p.kvF32)} GiB, bf16 ${g2(p.kvBf16)} GiB`);
  console.log(`realsize ${name} plan (extrapolated): LoRA step at ${p.L} tokens, micro-batch 1, checkpointed: kept layer inputs ${g2(s4.kept)} GiB + one layer's activations ${g2(s4.layer)} GiB + adapters/grads/moments ${g2(s4.adapters)} GiB (f32); bf16 ${g2(s2.kept)} + ${g2(s2.layer)} GiB; without checkpointing ~${g2(s4.layer * p.N)} GiB of activations (f32)`);
  const sam = 0.81 * GiB, clip = 0.56 * GiB;
  const needF32 = p.f32 + sam + clip + s4.kept + s4.layer + s4.adapters;
  const ram = os.totalmem();
  console.log(`realsize ${name} plan: LoRA GRPO here needs ~${g2(needF32)} GiB of tensors (f32 policy + SAM2-L + CLIP + step; the native process's RSS runs ~4.5 GiB above its tensors, measured at 3B); this machine has ${g2(ram)} GiB: ${needF32 + 4.5 * GiB < ram * 0.96 ? 'fits' : 'does not fit'}${measured ? ' (the 3B stage figures above are measured)' : ''}`);
}

/**
 * A full V8 collection (node --expose-gc): the loaders' read buffers are JS ArrayBuffers whose
 * memory V8 frees only when it collects, which a process that allocates little JS may not do for
 * a long time. Without --expose-gc, nothing.
 */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) { gc(); gc(); }
}

const dir = arg('dir', '/tmp/realsize');
/** the stages after load, in the order given */
const stages = arg('stages', 'segment,eval4,lora-step').split(',').filter(x => x && x !== 'load' && x !== 'none');
for (const x of stages) if (!['segment', 'eval4', 'lora-step'].includes(x)) throw new Error(`realsize: unknown stage ${JSON.stringify(x)} (segment, eval4, lora-step)`);
const maxNew = Number(arg('max-new-tokens', '16'));
const responseCap = Number(arg('response', '8'));
if (has('plan')) {
  printPlan('3b', QWEN2_5_VL_3B_HUB_CONFIG, false);
  printPlan('7b', QWEN2_5_VL_7B_HUB_CONFIG, false);
  process.exit(0);
}
const info = await initBackend({ quiet: true });
console.log(`# realsize ${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}  ${g2(os.totalmem())} GiB  backend ${info.name}`);
if (info.name !== 'tensorflow') console.log('realsize: not the native backend (DPAD_BACKEND=tensorflow); the load below must fail at once if the models cannot fit');
const weights = has('weights') ? arg('weights', '') : standIns(dir);
const bundle = await stage('load', () => {
  const b = loadWeights(weights);
  // the native head reads the embedding transposed in place: the held [D, V] copy is never used there
  if (tf.getBackend() === 'tensorflow') { b.policy.model.cacheTiedHead = false; b.policy.model.releaseTiedHead(); }
  collectGarbage();
  return b;
}, b => `${weights}: policy ${(b.policy.model.parameterCount() / 1e9).toFixed(2)}B, sam2 ${(b.sam.parameterCount() / 1e6).toFixed(0)}M, clip ${((b.scorer?.model.parameterCount() ?? 0) / 1e6).toFixed(0)}M parameters`);
const samples = await cocoSamples();
for (const x of stages) {
  if (x === 'segment') await stage('segment', () => segmentStage(bundle, samples[0], maxNew), d => d);
  if (x === 'eval4') await stage('eval4', () => eval4Stage(bundle, samples, maxNew), d => d);
  if (x === 'lora-step') await stage('lora-step', () => loraStage(bundle, samples[0], responseCap), d => d);
  collectGarbage();
}
bundle.dispose();
console.log('realsize: ok');
printPlan('3b', QWEN2_5_VL_3B_HUB_CONFIG, true);
printPlan('7b', QWEN2_5_VL_7B_HUB_CONFIG, false);
const p7 = memoryPlan(QWEN2_5_VL_7B_HUB_CONFIG);
console.log(`realsize 7b inference: not run: f32 weights alone are ${g2(p7.f32)} GiB (+ SAM2-L, CLIP, activations) against ${g2(os.totalmem())} GiB of RAM; the native backend holds float32 (bf16 weights would be ${g2(p7.bf16)} GiB)`);
