/**
 * The demo CLIP recipe: symmetric InfoNCE on (object crop, caption) pairs of the world, seeded;
 * its measure is the S1 > S2 rate of the reference caption on 100 held-out targets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { worldSample } from '../data/world/generator.ts';
import { crop } from '../io/resample.ts';
import { ClipModel, l2normalize } from '../models/clip/model.ts';
import { clipPreprocessBatch } from '../models/clip/preprocess.ts';
import { ClipTokenizer } from '../models/clip/tokenizer.ts';
import { worldClipConfig } from './models.ts';
import { saveModel, seedInit, trainLoop, type Manifest, type RunContext } from './pretrain_loop.ts';

export interface ClipRecipe {
  /** the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz), copied into the output */
  vocab: string;
  /** default 600 */
  steps?: number;
  /** peak learning rate, default 2e-3 */
  lr?: number;
  /** pairs per batch, default 16 */
  batch?: number;
}

export function pretrainClip(ctx: RunContext, o: ClipRecipe): Manifest {
  const seed = ctx.seed;
  const cfg = worldClipConfig('demo');
  const m = new ClipModel(cfg);
  seedInit(m, seed);
  m.logit_scale.assign(tf.scalar(Math.log(1 / 0.07)));
  const tok = ClipTokenizer.fromBpeFile(o.vocab);
  const B = o.batch ?? 16;
  const R = cfg.vision.image;
  const batch = (i: number) => {
    const rng = seedrandom(`clip:${seed}:${i}`);
    const imgs = [];
    const caps = [];
    for (let k = 0; k < B; k++) {
      const s = worldSample('train', Math.floor(rng() * 20000));
      const obj = s.objects[Math.floor(rng() * s.objects.length)];
      const pad = 2;
      imgs.push(crop(s.image, Math.floor(obj.cx - obj.r - pad), Math.floor(obj.cy - obj.r - pad), Math.ceil(obj.cx + obj.r + pad), Math.ceil(obj.cy + obj.r + pad)));
      caps.push(`a ${obj.size} ${obj.texture === 'solid' ? '' : obj.texture + ' '}${obj.color} ${obj.shape}`);
    }
    const t = tok.tokenize(caps, cfg.text.context);
    return { px: clipPreprocessBatch(imgs, R, 'hf'), ids: tf.tensor2d(t.ids, t.shape, 'int32') };
  };
  const step = (i: number): tf.Scalar => {
    const { px, ids } = batch(i);
    const l = tf.tidy(() => {
      const img = l2normalize(m.encodeImage(px)); // [B, E]
      const txt = l2normalize(m.encodeText(ids)); // [B, E]
      const logits = tf.mul(tf.exp(tf.minimum(m.logit_scale, Math.log(100))), tf.matMul(img, txt, false, true)); // [B, B]
      const labels = tf.oneHot(tf.range(0, B, 1, 'int32'), B);
      return tf.div(tf.add(tf.losses.softmaxCrossEntropy(labels, logits), tf.losses.softmaxCrossEntropy(labels, tf.transpose(logits))), 2) as tf.Scalar;
    });
    tf.dispose([px, ids]);
    return l;
  };
  // S1 > S2 for the reference caption on held-out targets (the discriminative criterion)
  const evaluate = () => {
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
  };
  return trainLoop(ctx, 'clip', m, o.steps ?? 600, o.lr ?? 2e-3, step, evaluate, () => {
    saveModel(ctx.out, m, { model_type: 'dpad-clip', ...cfg });
    fs.copyFileSync(o.vocab, path.join(ctx.out, 'bpe_simple_vocab_16e6.txt.gz'));
  });
}
