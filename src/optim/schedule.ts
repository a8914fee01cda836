/**
 * Learning-rate schedules as multipliers of the peak rate, for step i (0-based) of a run of
 * `steps`: a linear warm-up over the first `warmup` steps, then constant or a cosine decay.
 * The expressions are the demo pretraining recipes' own (the weights they write are byte-identical).
 */

/** min(1, (i + 1) / warmup): the warm-up, then 1 */
export function warmup(i: number, warmupSteps = 20): number {
  return Math.min(1, (i + 1) / warmupSteps);
}

/** the warm-up times a cosine decay from 1 at step 0 towards 0 at step `steps` */
export function warmupCosine(i: number, steps: number, warmupSteps = 20): number {
  return Math.min(1, (i + 1) / warmupSteps) * 0.5 * (1 + Math.cos((Math.PI * i) / steps));
}
