/**
 * Pretraining of the demo models on the embedded world, all through tfjs autograd:
 *   npx tsx tools/pretrain.ts clip   --out weights/demo/clip   [--steps N] [--seed S]
 *   npx tsx tools/pretrain.ts sam2   --out weights/demo/sam2   [--steps N] [--seed S] [--image-size 192] [--freeze-encoder] [--init dir]
 *   npx tsx tools/pretrain.ts policy --out weights/demo/policy [--steps N] [--seed S] [--vision-steps N] [--freeze-encoder] [--align-steps D,M]
 * clip: symmetric InfoNCE on (object crop, caption) pairs; sam2: BCE + dice (low resolution), dice at
 * the image's resolution and the IoU-head MSE, for box and box + points prompts; policy: teacher-forced cross-entropy on reference responses in the SPEC
 * format (the warm start), after an optional first stage that trains its vision tower on dense
 * per-cell object targets (tools/pretrain-vision.ts). Each writes config, weights and a manifest (command, seed, metrics),
 * checkpoints every --every steps, and is reproducible from its seed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend.ts';
import { referenceResponse, worldSample, type WorldSample } from '../src/data/world/generator.ts';
import { qwenConfigJson, worldClipConfig, worldQwenConfig, worldSam2Config, writeWorldTokenizer } from '../src/data/world/models.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { crop, resize } from '../src/io/resample.ts';
import { inscribedPoints, maskBox } from '../src/data/world/render.ts';
import { interpolate } from '../src/nn/interpolate.ts';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { ClipModel, l2normalize } from '../src/models/clip/model.ts';
import { clipPreprocessBatch } from '../src/models/clip/preprocess.ts';
import { ClipTokenizer } from '../src/models/clip/tokenizer.ts';
import { sequenceLogProbs } from '../src/models/qwen2_5_vl/generate.ts';
import { Qwen2_5_VL } from '../src/models/qwen2_5_vl/model.ts';
import { PolicyTokenizer } from '../src/models/qwen2_5_vl/tokenizer.ts';
import { Sam2Image } from '../src/models/sam2/model.ts';
import { sam2Preprocess } from '../src/models/sam2/predictor.ts';
import { policyImageUse, sam2BoxIoU } from '../src/eval/demo.ts';
import { pretrainVision } from './pretrain-vision.ts';
import { alignPolicy } from './pretrain-align.ts';
import { maskArea } from '../src/eval/metrics.ts';
import type { Module } from '../src/nn/module.ts';
import { openCheckpoint } from '../src/io/checkpoint.ts';
import { loadSam2Weights } from '../src/models/sam2/weights.ts';
import { loadQwenWeights } from '../src/models/qwen2_5_vl/weights.ts';
import { answerTokenSpan, encodePrompt, makePolicy } from '../src/pipeline/policy.ts';
import { AdamW, clipGradNorm } from '../src/rl/adamw.ts';
import { Progress } from '../src/util/progress.ts';
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
    view: { type: 'int', default: 112, min: 28, help: 'policy: the square view it sees, in pixels' },
    'image-size': { type: 'int', min: 16, help: 'sam2: the input resolution' },
    objects: { type: 'int', min: 1, help: 'sam2: prompts per image (default 4)' },
    'freeze-encoder': { type: 'boolean', help: 'sam2: freeze the image encoder; policy: freeze the vision tower' },
    val: { type: 'int', min: 1, help: 'validation samples (default: sam2 60, policy 24)' },
    'answer-weight': { type: 'number', min: 0, help: 'policy: loss weight of the answer tokens (default 1)' },
    'vision-steps': { type: 'int', min: 0, help: 'policy: steps of the dense vision stage first (default 0)' },
    'vision-lr': { type: 'number', min: 0, help: 'policy: learning rate of the vision stage (default 3e-3)' },
    'align-steps': { type: 'string', placeholder: '<D,M>', help: 'policy: D description steps, then M mixed steps (the alignment stage)' },
    'align-lr': { type: 'number', min: 0, help: 'policy: learning rate of the alignment stage (default 1e-3)' },
    'ground-weight': { type: 'number', min: 0, help: "policy: weight of the think's final sentence and the answer in mixed steps (default 10)" },
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
await initBackend();
const out = values.out;
const seed = Number(values.seed);
const command = `npx tsx tools/pretrain.ts ${process.argv.slice(2).join(' ')}`;
fs.mkdirSync(out, { recursive: true });

/** deterministic init: every parameter from a seeded normal/uniform of its module's default scale */
function seedInit(m: Module, s: number): void {
  let k = 0;
  for (const [n, v] of m.namedParameters()) {
    if (/(norm|ln_|layernorm|ln)\w*\.weight$|\.weight$/.test(n) && v.rank === 1) { v.assign(tf.onesLike(v)); continue; }
    if (v.rank === 1 || /bias$/.test(n)) { v.assign(tf.zerosLike(v)); continue; }
    const fanIn = v.rank >= 2 ? v.size / (v.shape[v.rank === 2 ? 1 : 0] as number) : 1;
    v.assign(tf.randomNormal(v.shape, 0, Math.min(0.05, 1 / Math.sqrt(Math.max(fanIn, 1))), 'float32', s * 7919 + k++));
  }
}

async function loop(name: string, model: Module, steps: number, lr: number, step: (i: number) => tf.Scalar, evaluate: () => Record<string, number>, save: () => void) {
  const opt = new AdamW({ lr, weightDecay: 0.01 });
  const params = model.trainableParameters();
  const vars = [...params.values()];
  const names = new Map([...params].map(([n, v]) => [v.name, n]));
  const bar = new Progress(name, steps);
  let ema = NaN;
  const every = Number(values.every);
  const t0 = Date.now();
  for (let i = 0; i < steps; i++) {
    const { value, grads } = tf.variableGrads(() => step(i), vars);
    const loss = value.dataSync()[0];
    value.dispose();
    const g = new Map(Object.entries(grads).map(([k, t]) => [names.get(k)!, t]));
    const norm = clipGradNorm(g, 1.0);
    // cosine decay with a short warm-up
    const w = Math.min(1, (i + 1) / 20) * 0.5 * (1 + Math.cos((Math.PI * i) / steps));
    if (Number.isFinite(loss) && Number.isFinite(norm)) opt.apply(params, g, lr * w);
    tf.dispose([...g.values()]);
    ema = Number.isNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
    bar.tick(1, `loss ${ema.toFixed(4)}`);
    if ((i + 1) % every === 0 && i + 1 < steps) save();
  }
  opt.dispose();
  const metrics = evaluate();
  save();
  // a run continued with --init records the run it started from (and that one's own origin), so the
  // whole recipe is reproducible from the manifest
  const initManifest = values.init ? path.join(values.init, 'manifest.json') : null;
  let from: Record<string, unknown> | undefined;
  if (initManifest && fs.existsSync(initManifest)) {
    const m = JSON.parse(fs.readFileSync(initManifest, 'utf8'));
    from = { command: m.command, seed: m.seed, steps: m.steps, lr: m.lr, seconds: m.seconds, metrics: m.metrics, from: m.from };
  }
  writeJsonAtomic(path.join(out, 'manifest.json'), { model: name, command, seed, steps, lr, seconds: (Date.now() - t0) / 1000, finalLoss: ema, metrics, backend: tf.getBackend(), ...(from ? { from } : {}) });
  console.log(`${name}: ${JSON.stringify(metrics)} -> ${out}`);
}

function saveModel(m: Module, config: object, extra: Record<string, string> = {}): void {
  const t = m.exportTensors();
  try {
    writeSafetensors(path.join(out, 'model.safetensors'), t, { dtype: 'F16', metadata: { format: 'dpad', ...extra } });
  } finally {
    tf.dispose([...t.values()]);
  }
  writeJsonAtomic(path.join(out, 'config.json'), config);
}

const train = (i: number, salt = 0): WorldSample => worldSample('train', (i * 7 + salt) % 20000);

if (what === 'clip') {
  const cfg = worldClipConfig('demo');
  const m = new ClipModel(cfg);
  seedInit(m, seed);
  m.logit_scale.assign(tf.scalar(Math.log(1 / 0.07)));
  const vocab = values.vocab ?? '../shared/fixtures/clip-tiny-openai/bpe_simple_vocab_16e6.txt.gz';
  const tok = ClipTokenizer.fromBpeFile(vocab);
  const B = Number(values.batch ?? 16);
  const R = cfg.vision.image;
  const batch = (i: number) => {
    const rng = seedrandom(`clip:${seed}:${i}`);
    const imgs = [];
    const caps = [];
    for (let k = 0; k < B; k++) {
      const s = worldSample('train', Math.floor(rng() * 20000));
      const o = s.objects[Math.floor(rng() * s.objects.length)];
      const pad = 2;
      imgs.push(crop(s.image, Math.floor(o.cx - o.r - pad), Math.floor(o.cy - o.r - pad), Math.ceil(o.cx + o.r + pad), Math.ceil(o.cy + o.r + pad)));
      caps.push(`a ${o.size} ${o.texture === 'solid' ? '' : o.texture + ' '}${o.color} ${o.shape}`);
    }
    const t = tok.tokenize(caps, cfg.text.context);
    return { px: clipPreprocessBatch(imgs, R, 'hf'), ids: tf.tensor2d(t.ids, t.shape, 'int32') };
  };
  await loop('clip', m, Number(values.steps ?? 600), Number(values.lr ?? 2e-3), i => {
    const { px, ids } = batch(i);
    const l = tf.tidy(() => {
      const img = l2normalize(m.encodeImage(px));
      const txt = l2normalize(m.encodeText(ids));
      const logits = tf.mul(tf.exp(tf.minimum(m.logit_scale, Math.log(100))), tf.matMul(img, txt, false, true));
      const labels = tf.oneHot(tf.range(0, B, 1, 'int32'), B);
      return tf.div(tf.add(tf.losses.softmaxCrossEntropy(labels, logits), tf.losses.softmaxCrossEntropy(labels, tf.transpose(logits))), 2) as tf.Scalar;
    });
    tf.dispose([px, ids]);
    return l;
  }, () => {
    // S1 > S2 for the reference caption on held-out targets (the discriminative criterion)
    let ok = 0;
    const n = 100;
    for (let i = 0; i < n; i++) {
      const s = worldSample('val', i);
      const [x1, y1, x2, y2] = s.box;
      const roi = crop(s.image, x1, y1, x2 + 1, y2 + 1);
      const r = tf.tidy(() => {
        const e = l2normalize(m.encodeImage(clipPreprocessBatch([roi, s.image], R, 'hf')));
        const t = tok.tokenize([s.caption], cfg.text.context);
        const te = l2normalize(m.encodeText(tf.tensor2d(t.ids, t.shape, 'int32')));
        return tf.matMul(e, te, false, true).dataSync();
      });
      if (r[0] > r[1]) ok++;
    }
    return { s1GreaterS2: ok / n };
  }, () => {
    saveModel(m, { model_type: 'dpad-clip', ...cfg });
    fs.copyFileSync(vocab, path.join(out, 'bpe_simple_vocab_16e6.txt.gz'));
  });
}

if (what === 'sam2') {
  // --image-size: SAM2's input side (default the demo's 192; a multiple of 16 whose Hiera stages divide by their windows)
  const cfg = { ...worldSam2Config('demo'), ...(values['image-size'] ? { image_size: Number(values['image-size']) } : {}) };
  const m = new Sam2Image(cfg);
  // the modules' own (torch-default) initialisers, seeded; the Fourier matrix is a fixed buffer in SAM2
  m.initialize(seed);
  // --init <dir>: continue from an earlier run's weights (the seed still orders the data)
  if (values.init) loadSam2Weights(m, openCheckpoint(path.join(values.init, 'model.safetensors')));
  m.setTrainable(false, n => n.endsWith('positional_encoding_gaussian_matrix'));
  // --freeze-encoder: train the prompt encoder and mask decoder only (a first phase: trained jointly
  // from the start, the encoder learns "all objects" features faster than the decoder learns to
  // follow prompts, and the masks end up ignoring the prompt)
  if (values['freeze-encoder']) m.setTrainable(false, n => n.startsWith('image_encoder.'));
  const S = cfg.image_size;
  const low = S / 4;
  const B = Number(values.batch ?? 8);
  const maskLow = (W: number, mask: Uint8Array) => {
    const r = resize({ width: W, height: W, channels: 1, data: Uint8Array.from(mask, v => v * 255) }, low, low, 'bilinear');
    return Float32Array.from(r.data, v => (v > 127 ? 1 : 0));
  };
  // every visible object of an image is a prompt (up to --objects of them): with several prompts on one
  // image, a mask that ignores its prompt cannot fit them all, so the prompt path has to carry the
  // answer (with one target per image the segmenter settled on prompt-independent "all objects" masks)
  const perImage = Number(values.objects ?? 4);
  const minArea = 16;
  await loop('sam2', m, Number(values.steps ?? 1500), Number(values.lr ?? 3e-3), i => {
    const images = Array.from({ length: B }, (_, k) => train(i * B + k, seed));
    const W = images[0].image.width;
    const k = S / W;
    const items = images.flatMap((s, img) => s.masks
      .filter(mk => maskArea(mk) >= minArea)
      .slice(0, perImage)
      .map(mk => ({ img, mask: mk, box: maskBox(mk, W, W), points: inscribedPoints(mk, W, W) })));
    const P = items.length;
    const withPoints = i % 2 === 1;
    // prompts in the model's S x S frame: the box (corners as the predictor sends them) and the two inner points
    const pr = {
      boxes: tf.tensor2d(items.map(t => [t.box[0] * k, t.box[1] * k, (t.box[2] + 1) * k, (t.box[3] + 1) * k])),
      pointCoords: withPoints ? tf.tensor3d(items.map(t => t.points.map(p => [p[0] * k, p[1] * k]))) : null,
      pointLabels: withPoints ? new Int32Array(P * 2).fill(1) : null,
    };
    const gtFull = tf.tensor3d(Float32Array.from(items.flatMap(t => Array.from(t.mask))), [P, 1, W * W]);
    const gtLow = tf.tensor3d(Float32Array.from(items.flatMap(t => Array.from(maskLow(W, t.mask)))), [P, 1, low * low]);
    const px = tf.concat(images.map(s => sam2Preprocess(s.image, S)), 0) as tf.Tensor4D;
    const which = tf.tensor1d(items.map(t => t.img), 'int32');
    const l = tf.tidy(() => {
      const enc = m.encodeImage(px);
      // each prompt decodes against its own image's features
      const f = { imageEmbed: tf.gather(enc.imageEmbed, which), highRes0: tf.gather(enc.highRes0, which), highRes1: tf.gather(enc.highRes1, which) };
      const out = m.decode(f, pr, 'all');
      // every mask token learns the target: BCE + dice on the low-resolution logits, and dice on the
      // logits upsampled to the image's size (what the predictor thresholds)
      const lowLogits = out.lowResMasks.reshape([P, 4, low * low]);
      const fullLogits = interpolate(out.lowResMasks, W, W, 'bilinear').reshape([P, 4, W * W]);
      const gl = tf.tile(gtLow, [1, 4, 1]);
      const gf = tf.tile(gtFull, [1, 4, 1]);
      const bce = tf.mean(tf.add(tf.sub(tf.relu(lowLogits), tf.mul(lowLogits, gl)), tf.log1p(tf.exp(tf.neg(tf.abs(lowLogits))))));
      const dice = (logits: tf.Tensor, g: tf.Tensor) => {
        const p = tf.sigmoid(logits);
        return tf.mean(tf.sub(1, tf.div(tf.add(tf.mul(2, tf.sum(tf.mul(p, g), -1)), 1), tf.add(tf.add(tf.sum(p, -1), tf.sum(g, -1)), 1))));
      };
      // the IoU head regresses the IoU of its own hard mask (a target without gradient)
      const iouT = tf.tidy(() => {
        const hard = tf.greater(tf.tensor(fullLogits.dataSync(), fullLogits.shape), 0).cast('float32'); // a copy, off the tape
        return tf.div(tf.sum(tf.mul(hard, gf), -1), tf.maximum(tf.sum(tf.maximum(hard, gf), -1), 1));
      });
      const iouLoss = tf.mean(tf.square(tf.sub(out.iouPredictions, iouT)));
      return tf.addN([bce, dice(lowLogits, gl), dice(fullLogits, gf), iouLoss]) as tf.Scalar;
    });
    tf.dispose([gtFull, gtLow, px, which, pr.boxes, pr.pointCoords ?? []]);
    return l;
  }, () => { const r = sam2BoxIoU(m, 'val', Number(values.val ?? 60)); return { valBoxIoU: r.box, valBoxPointsIoU: r.boxPoints }; }, () => saveModel(m, { model_type: 'dpad-sam2', ...cfg }));
}

if (what === 'policy') {
  const view = Number(values.view);
  const tokInfo = writeWorldTokenizer(out);
  const cfg = worldQwenConfig(tokInfo, 'demo');
  const model = new Qwen2_5_VL(cfg);
  seedInit(model, seed);
  // --init <dir>: continue from an earlier warm start (same tokenizer and sizes)
  if (values.init) loadQwenWeights(model, openCheckpoint(path.join(values.init, 'model.safetensors')));
  const policy = makePolicy(model, PolicyTokenizer.load(out), { viewSize: view });
  // --vision-steps N: first train the vision tower alone for N steps on dense per-cell targets
  // (src/data/world/cells.ts) through a linear probe that is then discarded
  const visionSteps = Number(values['vision-steps'] ?? 0);
  const visionMetrics = visionSteps > 0 ? pretrainVision(policy, visionSteps, Number(values['vision-lr'] ?? 3e-3), { seed }) : {};
  if (visionSteps > 0) console.log(`policy vision: ${JSON.stringify(visionMetrics)}`);
  // --freeze-encoder: keep the vision tower as it is (its seeded init, or as --vision-steps left
  // it). Trained jointly from scratch through the decoder alone, the tiny tower learns to emit one
  // large constant vector for every patch (image tokens 70x the norm of text embeddings, 5 %
  // image-dependent), and the decoder never learns to look at the image
  if (values['freeze-encoder']) model.setTrainable(false, n => n.startsWith('visual.'));
  // --answer-weight w: the loss weight of the <answer> JSON's tokens against 1 for the rest. The
  // coordinates are a few tokens of a long response, so with equal weights the reasoning text
  // dominates and the policy learns the format long before it learns to ground
  const answerWeight = Number(values['answer-weight'] ?? 1);
  // --align-steps D,M: before the main loop, D steps on dense scene descriptions then M steps mixing
  // them with ground-weighted reference responses (tools/pretrain-align.ts); needs --freeze-encoder
  let alignMetrics: Record<string, number> = {};
  if (values['align-steps']) {
    const [D, M] = values['align-steps'].split(',').map(Number);
    if (!(D >= 0 && M >= 0)) throw new UsageError(`--align-steps wants D,M (two step counts), got ${JSON.stringify(values['align-steps'])}`);
    const r = alignPolicy(policy, { describeSteps: D, mixedSteps: M, lr: Number(values['align-lr'] ?? 1e-3), answerWeight, groundWeight: Number(values['ground-weight'] ?? 10) });
    alignMetrics = { alignDescribeSteps: D, alignMixedSteps: M, alignDescribeLoss: r.describeLoss, alignMixedLoss: r.mixedLoss };
    console.log(`policy align: ${JSON.stringify(alignMetrics)}`);
  }
  const B = Number(values.batch ?? 4);
  const pad = cfg.pad_token_id;
  const imEnd = policy.tokenizer.tokenId('<|im_end|>');
  const example = (s: WorldSample) => {
    const enc = encodePrompt(policy, s.image, s.query);
    const text = referenceResponse(s, view);
    const resp = [...policy.tokenizer.encode(text), imEnd];
    const answer = answerTokenSpan(policy.tokenizer, text);
    return { enc, resp, answer };
  };
  const sft = (samples: WorldSample[]) => {
    const ex = samples.map(example);
    const P = Math.max(...ex.map(e => e.enc.ids.length));
    const R = Math.max(...ex.map(e => e.resp.length));
    const L = P + R;
    const ids = new Int32Array(B * L).fill(pad);
    const att = new Int32Array(B * L);
    const mask = new Float32Array(B * R);
    ex.forEach((e, b) => {
      ids.set(e.enc.ids, b * L + P - e.enc.ids.length);
      att.fill(1, b * L + P - e.enc.ids.length, b * L + P + e.resp.length);
      ids.set(e.resp, b * L + P);
      mask.fill(1, b * R, b * R + e.resp.length);
      mask.fill(answerWeight, b * R + e.answer[0], b * R + e.answer[1]);
    });
    const px = tf.concat(ex.map(e => e.enc.pixelValues), 0) as tf.Tensor2D;
    ex.forEach(e => e.enc.pixelValues.dispose());
    return { seq: { ids, batch: samples.length, promptLength: P, responseLength: R, attentionMask: att, pixelValues: px, grids: ex.map(e => e.enc.grid) }, mask: tf.tensor2d(mask, [samples.length, R]), px };
  };
  await loop('policy', model, Number(values.steps ?? 300), Number(values.lr ?? 3e-3), i => {
    const samples = Array.from({ length: B }, (_, k) => train(i * B + k, seed + 1));
    const b = sft(samples);
    const l = tf.tidy(() => {
      const lp = sequenceLogProbs(model, b.seq).logProbs;
      return tf.neg(tf.div(tf.sum(tf.mul(lp, b.mask)), tf.sum(b.mask))) as tf.Scalar;
    });
    tf.dispose([b.px, b.mask]);
    return l;
  }, () => {
    const r = policyImageUse(policy, 'val', Number(values.val ?? 24));
    return { ...visionMetrics, ...alignMetrics, valAnswerNll: r.answerNll, valAnswerNllOtherImage: r.otherImageNll };
  }, () => {
    saveModel(model, qwenConfigJson(cfg));
    writeJsonAtomic(path.join(out, 'dpad.json'), { viewSize: view });
  });
}
