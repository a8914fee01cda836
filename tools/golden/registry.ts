/** Every family adapter the project has; a model issue adds its family here. */
import type { FamilyAdapter } from './harness.ts';
import { clipAdapter } from './adapters/clip.ts';
import { qwenAdapter } from './adapters/qwen2_5_vl.ts';
import { sam2Adapter } from './adapters/sam2.ts';
import { grpoAdapter } from './adapters/grpo.ts';
import { metricsAdapter } from './adapters/metrics.ts';
import { rewardsAdapter } from './adapters/rewards.ts';

export const ADAPTERS: Map<string, FamilyAdapter> = new Map(
  [rewardsAdapter, metricsAdapter, grpoAdapter, clipAdapter, qwenAdapter, sam2Adapter].map(a => [a.family, a]),
);
