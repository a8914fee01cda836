/**
 * One `--data` spec -> a dataset, for training and evaluation alike (examples/train.ts and
 * examples/eval.ts accept the same kinds):
 *   world:<train|val|test>[:N]   the embedded world (N samples, default 100): trains and evaluates
 *   <file>.parquet               a Seg-Zero parquet: a training one (image, problem, solution) trains,
 *                                an evaluation one (image, text, mask) evaluates
 *   <dir> with refs(<by>).p      a refer folder (RefCOCO/+/g): evaluates (needs `images`)
 *   <dir>                        a ReasonSeg folder (image + JSON pairs): evaluates
 * Adding a loader: a file exporting a DatasetLoader, and one line in DATASET_LOADERS (or a list
 * passed to openDataset). The first loader that accepts a spec reads it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../util/cli.ts';
import { parquetEvalSamples, parquetRowCount, parquetTrainSamples } from './parquet.ts';
import { countReasonSeg, reasonSegSamples } from './reasonseg.ts';
import { refCocoIndex, refCocoSamples } from './refcoco.ts';
import type { EvalSample, EvalSet, Skipped, TrainDataset } from './types.ts';
import { worldTrainDataset } from './world/dataset.ts';
import { worldSample, type Split } from './world/generator.ts';

export interface DatasetOptions {
  /** what the loaders skip, with the reason (default: a list of the dataset's own) */
  skipped?: Skipped[];
  /** refer folders: the COCO train2014 image folder, the split (default 'val') and refs(<splitBy>).p (default 'umd') */
  images?: string;
  split?: string;
  splitBy?: string;
  /** ReasonSeg folders: 'ignore' regions count as target (default, as the released data build) or background */
  reasonsegIgnore?: 'target' | 'background';
  /** world training: the frame of the solutions, the policy's view (default 840) */
  frame?: number;
  /** training parquets: rows used (a seeded selection, as the released code; false: all) and the seed */
  subset?: number | false;
  seed?: number;
}

export interface DatasetLoader {
  /** a short name ('world', 'parquet', ...) */
  kind: string;
  /** how its spec looks, for the error listing the kinds */
  describe: string;
  /** whether this loader reads `spec` */
  accepts(spec: string, o: DatasetOptions): boolean;
  /** evaluation samples and their count; absent when the kind does not evaluate */
  eval?(spec: string, o: DatasetOptions, skipped: Skipped[]): EvalSet;
  /** training prompts; absent when the kind cannot train */
  train?(spec: string, o: DatasetOptions, skipped: Skipped[]): Promise<TrainDataset>;
}

export interface OpenedDataset {
  spec: string;
  kind: string;
  /** what the loader skipped so far (rows are skipped as they are read) */
  skipped: Skipped[];
  /** evaluation samples (a UsageError naming the spec when its kind does not evaluate) */
  eval(): EvalSet;
  /** training prompts (a UsageError naming the spec when its kind cannot train) */
  train(): Promise<TrainDataset>;
}

const WORLD = /^world:(train|val|test)(?::(\d+))?$/;

export const worldLoader: DatasetLoader = {
  kind: 'world',
  describe: 'world:<split>[:N]',
  accepts: spec => WORLD.test(spec),
  eval(spec) {
    const m = WORLD.exec(spec)!;
    const total = Number(m[2] ?? 100);
    const samples = (function* (): Generator<EvalSample> {
      for (let i = 0; i < total; i++) {
        const s = worldSample(m[1] as Split, i);
        yield { id: s.id, image: s.image, query: s.query, mask: s.mask, labels: { type: s.type, difficulty: s.difficulty } };
      }
    })();
    return { samples, total };
  },
  async train(spec, o) {
    const m = WORLD.exec(spec)!;
    return worldTrainDataset(Number(m[2] ?? 100), o.frame ?? 840, { split: m[1] as Split });
  },
};

export const parquetLoader: DatasetLoader = {
  kind: 'parquet',
  describe: 'a Seg-Zero .parquet',
  accepts: spec => spec.endsWith('.parquet') && fs.existsSync(spec),
  eval: (spec, _o, skipped) => ({ samples: parquetEvalSamples(spec, skipped), total: parquetRowCount(spec) }),
  async train(spec, o, skipped) {
    const rows = await parquetTrainSamples(spec, skipped, { subset: o.subset, seed: o.seed });
    return { size: rows.length, get: i => rows[i] };
  },
};

export const referLoader: DatasetLoader = {
  kind: 'refer',
  describe: 'a refer folder (refs(umd).p + instances.json)',
  accepts: (spec, o) => fs.existsSync(path.join(spec, `refs(${o.splitBy ?? 'umd'}).p`)),
  eval(spec, o, skipped) {
    if (!o.images) throw new UsageError(`--data ${spec} is a refer folder: give --images <the COCO train2014 folder>`);
    const r = { annDir: spec, imageDir: o.images, split: o.split ?? 'val', splitBy: o.splitBy ?? 'umd' };
    const entries = refCocoIndex(r, skipped);
    return { samples: refCocoSamples(r, entries, skipped), total: entries.length };
  },
};

export const reasonSegLoader: DatasetLoader = {
  kind: 'reasonseg',
  describe: 'a ReasonSeg folder',
  accepts: spec => fs.existsSync(spec) && fs.statSync(spec).isDirectory(),
  eval: (spec, o, skipped) => ({ samples: reasonSegSamples(spec, skipped, { ignore: o.reasonsegIgnore ?? 'target' }), total: countReasonSeg(spec) }),
};

/** The loaders, in the order they are tried (a ReasonSeg folder is any folder: it comes last). */
export const DATASET_LOADERS: readonly DatasetLoader[] = [worldLoader, parquetLoader, referLoader, reasonSegLoader];

const listed = (xs: string[]) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')}, or ${xs[xs.length - 1]}` : xs.join(''));

/** The dataset a `--data` spec names (a UsageError listing the kinds when no loader reads it). */
export function openDataset(spec: string, opts: DatasetOptions = {}, loaders: readonly DatasetLoader[] = DATASET_LOADERS): OpenedDataset {
  const loader = loaders.find(l => l.accepts(spec, opts));
  if (!loader) throw new UsageError(`--data ${spec}: expected ${listed(loaders.map(l => l.describe))}`);
  const skipped = opts.skipped ?? [];
  const refuse = (what: string) => new UsageError(`--data ${spec}: a ${loader.kind} dataset cannot ${what} (${what === 'train' ? 'training needs prompts with a <box>/<points> solution: world:<split>[:N] or a Seg-Zero training .parquet' : 'evaluation needs ground-truth masks'})`);
  return {
    spec, kind: loader.kind, skipped,
    eval: () => {
      if (!loader.eval) throw refuse('evaluate');
      return loader.eval(spec, opts, skipped);
    },
    train: async () => {
      if (!loader.train) throw refuse('train');
      return loader.train(spec, opts, skipped);
    },
  };
}
