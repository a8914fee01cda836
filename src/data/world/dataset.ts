/** The world as datasets for training and evaluation. */
import type { TrainDataset } from '../types.ts';
import { worldSample, type Split } from './generator.ts';

export function worldTrainDataset(n: number, frame: number, opts: { size?: number; split?: Split } = {}): TrainDataset {
  return {
    size: n,
    get: i => {
      const s = worldSample(opts.split ?? 'train', i, { frame, size: opts.size });
      return { image: s.image, query: s.query, solution: s.solution };
    },
  };
}
