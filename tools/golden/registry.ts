/** Every family adapter the project has; a model issue adds its family here. */
import type { FamilyAdapter } from './harness.ts';
import { grpoAdapter } from './adapters/grpo.ts';
import { metricsAdapter } from './adapters/metrics.ts';
import { rewardsAdapter } from './adapters/rewards.ts';

export const ADAPTERS: Map<string, FamilyAdapter> = new Map(
  [rewardsAdapter, metricsAdapter, grpoAdapter].map(a => [a.family, a]),
);
