/**
 * The shapes every dataset loader returns, below their consumers (the trainer, the evaluation):
 * a loader in data/ imports only io/, prompt/ and data/. openDataset (open.ts) gives both kinds
 * from one `--data` spec.
 */
import type { ImageU8 } from '../io/resample.ts';

/** What a loader skipped and why (a malformed row, a missing file, ...). */
export interface Skipped {
  id: string;
  reason: string;
}

/** One training prompt: an image, a query and the ground truth in the policy's frame. */
export interface TrainSample {
  image: ImageU8;
  query: string;
  /** `<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>` in the policy frame */
  solution: string;
}

/** Training prompts by index (the trainer shuffles the indices per epoch). */
export interface TrainDataset {
  size: number;
  get(i: number): TrainSample | Promise<TrainSample>;
}

/** One evaluation sample: an image, a query and the ground-truth mask. */
export interface EvalSample {
  id: string;
  image: ImageU8;
  query: string;
  /** ground-truth mask at the image's size (non-zero = target; 255 = ignore is treated as target) */
  mask: Uint8Array;
  labels?: Record<string, string>;
}

/** Evaluation samples, streamed, and how many there are (a promise when counting reads the data). */
export interface EvalSet {
  samples: Iterable<EvalSample> | AsyncIterable<EvalSample>;
  total: number | Promise<number>;
}
