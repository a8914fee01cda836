/**
 * A rollout worker: pulls prompt messages from the shared work queue, samples G responses with the
 * weights version the message allows (the newest published one, waiting for it when the learner is
 * behind), scores them with the reward registry, publishes the group (with its rollout id, the
 * version and the generation-time log-probs) and only then acknowledges the prompt. A worker that
 * dies before the ack leaves the prompt to be redelivered after ackWait to another worker.
 *
 * Prompt p of step s samples from rolloutRng(seed, s, p) (rl/trainer.ts), the single-process
 * trainer's RNG for that prompt, and through the trainer's own encodeStepPrompt / sampleGroup: so
 * which worker takes a prompt does not change the group.
 */
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { loraAdapters } from '../models/qwen2_5_vl/lora.ts';
import type { Policy } from '../pipeline/policy.ts';
import type { TrainDataset } from '../data/types.ts';
import type { CaptionScorer } from '../rewards/discriminative.ts';
import { REWARDS, type RewardFn } from '../rewards/registry.ts';
import { scoreGroup } from '../rewards/score.ts';
import type { TrainConfig } from '../rl/config.ts';
import { attachLora } from '../rl/lora.ts';
import { encodeStepPrompt, rolloutRng, sampleGroup } from '../rl/trainer.ts';
import * as tf from '@tensorflow/tfjs-core';
import { fromJson, groupSubject, isTransient, latestVersion, rolloutId, toJson, workerConsumer, type Bus, type GroupMsg, type PromptMsg } from './bus.ts';
import { loadWeightsBlob } from './weights.ts';

/** Test hook: return true to die at that point (the connection is closed without the ack). */
export type FaultHook = (at: 'generated' | 'published', m: PromptMsg, g: GroupMsg) => boolean | Promise<boolean>;

export interface WorkerStats {
  groups: number;
  rollouts: number;
  /** prompts dropped because the learner had already passed them */
  obsolete: number;
  /** seconds spent generating and scoring */
  busySeconds: number;
  /** weights versions loaded */
  loads: number;
  /** groups given up on a connection error (their prompts are redelivered) */
  errors: number;
}

export interface WorkerOptions {
  id: string;
  policy: Policy;
  scorer: CaptionScorer | null;
  data: TrainDataset;
  config: TrainConfig;
  rewards?: readonly RewardFn[];
  fault?: FaultHook;
  /**
   * a fixed prompt-to-worker assignment: this worker takes the prompts with p % of === index and
   * hands the others back at once (nak), so they go to their own worker (tests; throughput is
   * better without it)
   */
  assign?: { index: number; of: number };
  /** called after each published group */
  onGroup?: (g: GroupMsg) => void;
}

export class RolloutWorker {
  readonly id: string;
  readonly stats: WorkerStats = { groups: 0, rollouts: 0, obsolete: 0, busySeconds: 0, loads: 0, errors: 0 };
  version: number | null = null;
  private stopped = false;
  private dead = false;

  private readonly bus: Bus;
  readonly opts: WorkerOptions;

  constructor(bus: Bus, opts: WorkerOptions) {
    this.bus = bus;
    this.opts = opts;
    this.id = opts.id;
    const c = opts.config;
    if (!c.distributed) throw new Error(`worker ${opts.id}: the config has no 'distributed' section`);
    if (c.lora && !loraAdapters(opts.policy.model).size) attachLora(opts.policy.model, c.lora, c.seed);
  }

  /** stop after the current group */
  stop(): void {
    this.stopped = true;
  }

  get killed(): boolean {
    return this.dead;
  }

  /** Pull and process prompts until stop() (or a fault hook kills it). */
  async run(): Promise<WorkerStats> {
    const d = this.opts.config.distributed!;
    const consumer: Consumer = await this.bus.js.consumers.get(d.promptsStream, workerConsumer(d));
    while (!this.stopped && !this.dead) {
      let m: JsMsg | null;
      try {
        m = await consumer.next({ expires: 1000 });
      } catch (e) {
        if (this.stopped || this.bus.nc.isClosed()) break;
        await sleep(250); // the server restarting: the client reconnects
        continue;
      }
      if (!m) continue;
      try {
        await this.handle(m);
      } catch (e) {
        // the server restarting: the prompt, not acknowledged, is redelivered
        if (!isTransient(e) || this.stopped) throw e;
        this.stats.errors++;
        await sleep(250);
      }
    }
    return this.stats;
  }

  private async kill(): Promise<void> {
    this.dead = true;
    await this.bus.nc.close();
  }

  /** the weights version to generate with, loaded; null: the prompt is obsolete (the learner moved past it) */
  private async ensureVersion(pm: PromptMsg, m: JsMsg): Promise<number | null> {
    let last = Date.now();
    for (;;) {
      const v = await latestVersion(this.bus);
      if (v !== null && v > pm.maxVersion) return null;
      if (v !== null && v >= pm.minVersion) {
        if (v === this.version) return v;
        const blob = await this.bus.weights.getBlob(`${this.bus.d.run}/v${v}`);
        if (blob) {
          loadWeightsBlob(this.opts.policy.model, blob, `${this.bus.d.weightsBucket}:${this.bus.d.run}/v${v}`);
          this.version = v;
          this.stats.loads++;
          return v;
        }
      }
      if (Date.now() - last > 5000) { m.working(); last = Date.now(); }
      await sleep(50);
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    const c = this.opts.config;
    const pm = fromJson<PromptMsg>(m.data, `prompt message ${m.subject}#${m.seq}`);
    const a = this.opts.assign;
    if (a && pm.prompt % a.of !== a.index) {
      m.nak(20);
      await sleep(20);
      return;
    }
    const version = await this.ensureVersion(pm, m);
    if (version === null) {
      m.ack();
      this.stats.obsolete++;
      return;
    }
    const t0 = performance.now();
    const sample = await this.opts.data.get(pm.index);
    const pr = encodeStepPrompt(this.opts.policy, c, sample, pm.index);
    let gen;
    try {
      gen = sampleGroup(this.opts.policy, c, pr, rolloutRng(c.seed, pm.step, pm.prompt));
    } finally {
      tf.dispose([pr.pixels, ...(pr.embeds ? [pr.embeds] : [])]);
    }
    const t1 = performance.now();
    const texts = gen.tokens.map(t => this.opts.policy.tokenizer.decode(t, true));
    const results = await scoreGroup(texts, { ...sample, image: pr.view }, { config: c.rewards, scorer: this.opts.scorer, rewards: this.opts.rewards ?? REWARDS });
    const t2 = performance.now();
    const id = rolloutId(pm);
    const g: GroupMsg = {
      rolloutId: id, step: pm.step, prompt: pm.prompt, index: pm.index, attempt: pm.attempt, version, worker: this.id,
      promptIds: pr.ids, responses: gen.tokens, texts, rewards: results.map(r => r.total),
      components: results.map(r => Object.fromEntries(Object.entries(r.components).map(([k, v]) => [k, v.value]))),
      logprobs: gen.logprobs, seconds: { generate: (t1 - t0) / 1000, score: (t2 - t1) / 1000 },
    };
    if (await this.opts.fault?.('generated', pm, g)) return this.kill();
    // published (stored on disk: the PubAck) before the prompt is acknowledged
    await this.bus.js.publish(groupSubject(this.bus.d, pm.step, pm.prompt), toJson(g), { msgID: `group.${id}` });
    if (await this.opts.fault?.('published', pm, g)) return this.kill();
    await m.ackAck().catch(() => false);
    this.stats.groups++;
    this.stats.rollouts += g.responses.length;
    this.stats.busySeconds += (t2 - t0) / 1000;
    this.opts.onGroup?.(g);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms));
}
