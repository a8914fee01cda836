/**
 * The policy warm start's first stage: its vision tower alone, on dense per-cell targets of the
 * world (cells.ts) through a linear probe on the merged tokens, which is discarded.
 * The decoder then reads features that already say what is where, instead of having to shape the
 * tower through a long text loss (which, on the world, it never does).
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { CELL_FIELDS, CELL_OUTPUTS, cellTargets, type CellObject, type CellTargets } from './cells.ts';
import { worldSample, type Split, type WorldSample } from '../data/world/generator.ts';
import { inscribedPoints, maskBox } from '../data/world/render.ts';
import { encodeImage, type Policy } from '../pipeline/policy.ts';
import { AdamW, ownedVariable } from '../optim/adamw.ts';
import { warmupCosine } from '../optim/schedule.ts';
import { optimizerStep } from '../optim/step.ts';
import { Progress } from '../util/progress.ts';

interface Batch { pixels: tf.Tensor2D; grids: [number, number, number][]; targets: CellTargets[] }

/** every object of a sample with its mask's box and inner points */
export function cellObjects(s: WorldSample): CellObject[] {
  const { width: W, height: H } = s.image;
  return s.objects.map((o, i) => ({ ...o, box: maskBox(s.masks[i], W, H), points: inscribedPoints(s.masks[i], W, H) }));
}

function batchOf(policy: Policy, split: Split, indices: number[]): Batch {
  const merge = policy.model.config.vision_config.spatial_merge_size;
  const px: tf.Tensor2D[] = [];
  const grids: [number, number, number][] = [];
  const targets: CellTargets[] = [];
  for (const i of indices) {
    const s = worldSample(split, i);
    const enc = encodeImage(policy, s.image);
    px.push(enc.pixelValues);
    grids.push(enc.grid);
    targets.push(cellTargets(cellObjects(s), s.image.width, s.image.height, enc.grid[1] / merge, enc.grid[2] / merge, policy.viewSize));
  }
  const pixels = tf.concat(px, 0) as tf.Tensor2D;
  tf.dispose(px);
  return { pixels, grids, targets };
}

/** the probe's outputs split by field: [cells, width] each */
function fields(out: tf.Tensor2D): Record<keyof typeof CELL_FIELDS, tf.Tensor2D> {
  const names = Object.keys(CELL_FIELDS) as (keyof typeof CELL_FIELDS)[];
  const parts = tf.split(out, names.map(k => CELL_FIELDS[k]), 1) as tf.Tensor2D[];
  return Object.fromEntries(names.map((k, i) => [k, parts[i]])) as Record<keyof typeof CELL_FIELDS, tf.Tensor2D>;
}

/** mean cross-entropy over the cells with a class (index >= 0) */
function maskedCe(logits: tf.Tensor2D, index: Int32Array): tf.Scalar {
  const mask = tf.tensor1d(Float32Array.from(index, v => (v >= 0 ? 1 : 0)));
  const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.tensor1d(Int32Array.from(index, v => Math.max(v, 0)), 'int32'), logits.shape[1])), 1));
  return tf.div(tf.sum(tf.mul(nll, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
}

/** the loss weight of the shape cross-entropy against 1 for the other attributes */
const SHAPE_WEIGHT = 4;

function probeLoss(out: tf.Tensor2D, t: CellTargets[]): tf.Scalar {
  const f = fields(out);
  const cat = (k: 'objectness' | 'geometry' | 'position' | 'code') => Float32Array.from(t.flatMap(x => Array.from(x[k])));
  const idx = (k: 'color' | 'shape' | 'texture' | 'size') => Int32Array.from(t.flatMap(x => Array.from(x[k])));
  const obj = tf.tensor2d(cat('objectness'), [out.shape[0], 1]);
  // binary cross-entropy with logits: softplus(x) - y x
  const bce = tf.mean(tf.sub(tf.softplus(f.objectness), tf.mul(obj, f.objectness)));
  // the geometry is regressed (cell units, 0..cells) with an L1 loss at object cells, the position at every cell
  const geo = tf.div(tf.sum(tf.mul(tf.abs(tf.sub(f.geometry, tf.tensor2d(cat('geometry'), [out.shape[0], 8]))), obj)), tf.maximum(tf.mul(tf.sum(obj), 8), 1));
  const C = CELL_FIELDS.code;
  const code = tf.div(tf.sum(tf.mul(tf.square(tf.sub(f.code, tf.tensor2d(cat('code'), [out.shape[0], C]))), obj)), tf.maximum(tf.mul(tf.sum(obj), C), 1));
  const pos = tf.mean(tf.abs(tf.sub(f.position, tf.tensor2d(cat('position'), [out.shape[0], 2]))));
  // shape is weighted up: it is the one field read from the layout of several patches rather than
  // from their colours, and the slowest to learn (RESULTS.md)
  const ce = tf.addN([maskedCe(f.color, idx('color')), tf.mul(SHAPE_WEIGHT, maskedCe(f.shape, idx('shape'))), maskedCe(f.texture, idx('texture')), maskedCe(f.size, idx('size'))]);
  return tf.addN([bce, ce, tf.mul(4, geo), tf.mul(2, pos), tf.mul(4, code)]) as tf.Scalar;
}

/**
 * Train `policy.model.visual` for `steps` steps (batches of 16 train images, seeded) and return
 * its probe's val accuracies: objectness, colour and shape at object cells, and the mean absolute
 * error of the box coordinates in view pixels.
 * Only the vision tower changes; the decoder's parameters are left as they are.
 */
export function pretrainVision(policy: Policy, steps: number, lr: number, opts: { batch?: number; seed?: number; val?: number } = {}): Record<string, number> {
  const model = policy.model;
  const B = opts.batch ?? 16;
  const rng = seedrandom(`vision:${opts.seed ?? 0}`);
  const H = model.config.vision_config.out_hidden_size;
  const probe = new Map<string, tf.Variable>([
    ['probe.weight', ownedVariable(tf.randomNormal([H, CELL_OUTPUTS], 0, 0.02, 'float32', opts.seed ?? 0), true, 'vision_probe_w')],
    ['probe.bias', ownedVariable(tf.zeros([CELL_OUTPUTS]), true, 'vision_probe_b')],
  ]);
  const params = new Map([...[...model.namedParameters()].filter(([n]) => n.startsWith('visual.')), ...probe]);
  const run = (b: Batch) => tf.add(tf.matMul(model.visual.forward(b.pixels, b.grids), probe.get('probe.weight')!), probe.get('probe.bias')!) as tf.Tensor2D;
  const opt = new AdamW({ lr, weightDecay: 0.01 });
  const bar = new Progress('policy vision', steps);
  let ema = NaN;
  for (let i = 0; i < steps; i++) {
    const b = batchOf(policy, 'train', Array.from({ length: B }, () => Math.floor(rng() * 20000)));
    // a non-finite loss skips the update (the gradient norm is not checked here)
    const { loss } = optimizerStep(opt, params, () => probeLoss(run(b), b.targets), { maxNorm: 1.0, lr: lr * warmupCosine(i, steps), guardNorm: false });
    b.pixels.dispose();
    ema = Number.isNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
    bar.tick(1, `loss ${ema.toFixed(4)}`);
  }
  opt.dispose();
  // val: how well the probe reads the features
  const nVal = opts.val ?? 64;
  const b = batchOf(policy, 'val', Array.from({ length: nVal }, (_, i) => i));
  const out = tf.tidy(() => run(b));
  b.pixels.dispose();
  const f = fields(out);
  const [o, col, shp, geo] = [f.objectness.dataSync(), f.color.arraySync(), f.shape.arraySync(), f.geometry.arraySync()];
  tf.dispose([out, ...Object.values(f), ...probe.values()]);
  let cells = 0, objOk = 0, objects = 0, colorOk = 0, shapeOk = 0, boxErr = 0;
  const argmax = (r: number[]) => r.indexOf(Math.max(...r));
  let k = 0;
  for (const t of b.targets) for (let c = 0; c < t.objectness.length; c++, k++) {
    cells++;
    if ((o[k] > 0) === (t.objectness[c] === 1)) objOk++;
    if (t.objectness[c] !== 1) continue;
    objects++;
    if (argmax(col[k]) === t.color[c]) colorOk++;
    if (argmax(shp[k]) === t.shape[c]) shapeOk++;
    for (let j = 0; j < 4; j++) boxErr += (Math.abs(geo[k][j] - t.geometry[c * 8 + j]) * policy.viewSize) / (j % 2 ? t.rows : t.cols) / 4;
  }
  return { visionSteps: steps, visionObjectnessAcc: objOk / cells, visionColorAcc: colorOk / objects, visionShapeAcc: shapeOk / objects, visionBoxErrPx: boxErr / objects };
}
