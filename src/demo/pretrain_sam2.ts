/**
 * The demo SAM2 recipe: BCE + dice on the low-resolution logits, dice at the image's resolution and
 * the IoU head's MSE, for box prompts (even steps) and box + two inner points (odd steps); its
 * measure is the mean IoU on held-out samples (probes.ts sam2BoxIoU).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { inscribedPoints, maskBox } from '../data/world/render.ts';
import { maskArea } from '../eval/metrics.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { resize } from '../io/resample.ts';
import { Sam2Image } from '../models/sam2/model.ts';
import { sam2Preprocess } from '../models/sam2/predictor.ts';
import { loadSam2Weights } from '../models/sam2/weights.ts';
import { interpolate } from '../nn/interpolate.ts';
import { worldSam2Config } from './models.ts';
import { saveModel, trainLoop, trainSample, type Manifest, type RunContext } from './pretrain_loop.ts';
import { sam2BoxIoU } from './probes.ts';

export interface Sam2Recipe {
  /** default 1500 */
  steps?: number;
  /** peak learning rate, default 3e-3 */
  lr?: number;
  /** images per batch, default 8 */
  batch?: number;
  /** SAM2's input side (default the demo's 192; a multiple of 16 whose Hiera stages divide by their windows) */
  imageSize?: number;
  /** prompts per image, default 4 */
  objects?: number;
  /** train the prompt encoder and mask decoder only */
  freezeEncoder?: boolean;
  /** validation samples, default 60 */
  val?: number;
}

export function pretrainSam2(ctx: RunContext, o: Sam2Recipe = {}): Manifest {
  const seed = ctx.seed;
  const cfg = { ...worldSam2Config('demo'), ...(o.imageSize ? { image_size: o.imageSize } : {}) };
  const m = new Sam2Image(cfg);
  // the modules' own (torch-default) initialisers, seeded; the Fourier matrix is a fixed buffer in SAM2
  m.initialize(seed);
  // init: continue from an earlier run's weights (the seed still orders the data)
  if (ctx.init) loadSam2Weights(m, openCheckpoint(path.join(ctx.init, 'model.safetensors')));
  m.setTrainable(false, n => n.endsWith('positional_encoding_gaussian_matrix'));
  // freezeEncoder: a first phase (trained jointly from the start, the encoder learns "all objects"
  // features faster than the decoder learns to follow prompts, and the masks end up ignoring the prompt)
  if (o.freezeEncoder) m.setTrainable(false, n => n.startsWith('image_encoder.'));
  const S = cfg.image_size;
  const low = S / 4;
  const B = o.batch ?? 8;
  const maskLow = (W: number, mask: Uint8Array) => {
    const r = resize({ width: W, height: W, channels: 1, data: Uint8Array.from(mask, v => v * 255) }, low, low, 'bilinear');
    return Float32Array.from(r.data, v => (v > 127 ? 1 : 0));
  };
  // every visible object of an image is a prompt (up to `objects` of them): with several prompts on one
  // image, a mask that ignores its prompt cannot fit them all, so the prompt path has to carry the
  // answer (with one target per image the segmenter settled on prompt-independent "all objects" masks)
  const perImage = o.objects ?? 4;
  const minArea = 16;
  const step = (i: number): tf.Scalar => {
    const images = Array.from({ length: B }, (_, k) => trainSample(i * B + k, seed));
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
  };
  const evaluate = () => {
    const r = sam2BoxIoU(m, 'val', o.val ?? 60);
    return { valBoxIoU: r.box, valBoxPointsIoU: r.boxPoints };
  };
  return trainLoop(ctx, 'sam2', m, o.steps ?? 1500, o.lr ?? 3e-3, step, evaluate, () => saveModel(ctx.out, m, { model_type: 'dpad-sam2', ...cfg }));
}
