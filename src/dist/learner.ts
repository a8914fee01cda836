/**
 * The learner: the single-process GrpoTrainer (rl/trainer.ts) with its rollout and score phases
 * replaced by the workers (trainer.rolloutSource). Every other phase, the checkpoints, resume and
 * the JSONL log are the trainer's own. At step s (0-based; the policy then holds version s):
 *
 *   1. publish the weights version s (object store <run>/v<s>, then <run>/latest) if not yet;
 *   2. publish the prompts of steps s .. s + maxStaleness (once each: message ids dedupe);
 *   3. read the groups of step s from the groups stream by subject, in stream order, keeping the
 *      first group of each prompt whose version lies in [s - maxStaleness, s]: a second group of the
 *      same prompt (a redelivered prompt, a resumed run) is a duplicate, counted and not trained;
 *      an older one is dropped, counted, and its prompt republished (attempt + 1);
 *   4. the trainer's advantages, gradients (maxStaleness > 0: logp_old = the generation-time
 *      log-probs, gradients.ts), update and step log, with the health figures in log.distributed.
 *
 * The groups stay in the stream, so a learner killed mid-step resumes from its checkpoint and
 * re-reads exactly the groups it had: the resumed run is the uninterrupted one.
 */
import { DeliverPolicy, type Consumer } from '@nats-io/jetstream';
import type { Rollout, StepLog, StepPrompt } from '../rl/trainer.ts';
import { epochOrder, type GrpoTrainer } from '../rl/trainer.ts';
import { fromJson, isTransient, promptSubject, retrying, rolloutId, stepGroupsFilter, toJson, workerConsumer, type Bus, type GroupMsg, type PromptMsg, type RunInfo } from './bus.ts';
import { staleGradients, type DistRollout } from './gradients.ts';
import { weightsBlob } from './weights.ts';

export interface LearnerTotals {
  /** groups older than the staleness bound, not trained */
  dropped: number;
  /** further groups of a (step, prompt) already taken (dedupe by rollout id / prompt) */
  duplicates: number;
}

export interface LearnerOptions {
  /** the data spec and subset the workers open (RunInfo) */
  data: string;
  subset?: number;
  /** fail a step that has waited this long for its groups (default: wait forever) */
  stepTimeoutMs?: number;
}

export class Learner {
  readonly totals: LearnerTotals = { dropped: 0, duplicates: 0 };
  private publishedVersion = -1;
  private publishedPrompts = new Set<string>();
  private orders = new Map<number, number[]>();

  private readonly bus: Bus;
  readonly trainer: GrpoTrainer;
  private readonly opts: LearnerOptions;

  constructor(bus: Bus, trainer: GrpoTrainer, opts: LearnerOptions) {
    this.bus = bus;
    this.trainer = trainer;
    this.opts = opts;
    if (!trainer.config.distributed) throw new Error("learner: the config has no 'distributed' section");
    trainer.rolloutSource = (prompts, step) => this.collect(prompts, step);
    if (trainer.config.distributed.maxStaleness > 0) {
      trainer.gradients = (prompts, rollouts, adv) => staleGradients(trainer, prompts, rollouts as DistRollout[], adv);
    }
  }

  /** Publish the run info, then the trainer's run (resume unless fresh). */
  async run(opts: { fresh?: boolean; maxSteps?: number } = {}): Promise<StepLog[]> {
    const d = this.bus.d;
    if (opts.fresh) {
      // a fresh run: the old run's prompts, groups and weights are gone
      for (const [stream, filter] of [[d.promptsStream, promptSubject(d)], [d.groupsStream, `${d.groupsStream}.${d.run}.>`]]) await this.bus.jsm.streams.purge(stream, { filter });
      const objs = await this.bus.weights.list();
      for (const o of objs) if (o.name.startsWith(`${d.run}/`)) await this.bus.weights.delete(o.name);
    }
    const info: RunInfo = { config: this.trainer.config, data: this.opts.data, size: this.trainer.data.size, ...(this.opts.subset ? { subset: this.opts.subset } : {}) };
    await retrying('publishing the run info', () => this.bus.weights.putBlob({ name: `${d.run}/run` }, toJson(info)));
    return this.trainer.run(opts);
  }

  /** the dataset index of prompt p of step s (the trainer's order: position s * P + p) */
  indexAt(step: number, p: number): number {
    const size = this.trainer.data.size;
    const n = step * this.trainer.config.promptsPerStep + p;
    const epoch = Math.floor(n / size);
    let o = this.orders.get(epoch);
    if (!o) { o = epochOrder(this.trainer.config.seed, size, epoch); this.orders.set(epoch, o); }
    return o[n % size];
  }

  private async publishWeights(version: number): Promise<void> {
    if (this.publishedVersion === version) return;
    const d = this.bus.d;
    const t = this.trainer;
    const blob = weightsBlob(t.policy.model, t.config.lora !== null);
    await retrying(`publishing weights v${version}`, () => this.bus.weights.putBlob({ name: `${d.run}/v${version}` }, blob));
    await retrying('publishing the latest version', () => this.bus.weights.putBlob({ name: `${d.run}/latest` }, toJson({ version })));
    // versions no prompt may use any more
    const old = version - d.maxStaleness - 1;
    if (old >= 0) await this.bus.weights.delete(`${d.run}/v${old}`).catch(() => false);
    this.publishedVersion = version;
  }

  private async publishPrompt(step: number, p: number, attempt: number): Promise<void> {
    const d = this.bus.d;
    const m: PromptMsg = { run: d.run, step, prompt: p, index: this.indexAt(step, p), attempt, minVersion: Math.max(0, step - d.maxStaleness), maxVersion: step };
    const id = rolloutId(m);
    if (this.publishedPrompts.has(id)) return;
    await retrying(`publishing prompt ${id}`, () => this.bus.js.publish(promptSubject(d), toJson(m), { msgID: `prompt.${id}` }));
    this.publishedPrompts.add(id);
  }

  private async collect(prompts: StepPrompt[], step: number): Promise<{ rollouts: Rollout[]; generated: number; distributed: Record<string, unknown> }> {
    const d = this.bus.d;
    const c = this.trainer.config;
    const t0 = performance.now();
    prompts.forEach((pr, p) => {
      if (pr.index !== this.indexAt(step, p)) throw new Error(`learner: step ${step} prompt ${p} is dataset row ${pr.index}, the order gives ${this.indexAt(step, p)}`);
    });
    await this.publishWeights(step);
    const last = Math.min(step + d.maxStaleness, this.trainer.totalSteps - 1);
    for (let s = step; s <= last; s++) for (let p = 0; p < c.promptsPerStep; p++) await this.publishPrompt(s, p, 0);
    const { have, dropped, duplicates } = await this.readGroups(prompts, step);
    this.totals.dropped += dropped;
    this.totals.duplicates += duplicates;
    const rollouts: DistRollout[] = [];
    let generated = 0;
    const workers: Record<string, { groups: number; rollouts: number; seconds: number }> = {};
    const lags: number[] = [];
    for (let p = 0; p < prompts.length; p++) {
      const g = have.get(p)!;
      lags.push(step - g.version);
      const w = (workers[g.worker] ??= { groups: 0, rollouts: 0, seconds: 0 });
      w.groups++; w.rollouts += g.responses.length; w.seconds += g.seconds.generate + g.seconds.score;
      g.responses.forEach((resp, k) => {
        generated += resp.length;
        rollouts.push({ index: rollouts.length, prompt: p, promptIds: prompts[p].ids, response: resp, text: g.texts[k], reward: g.rewards[k], components: { ...g.components[k] }, logprobs: g.logprobs[k], version: g.version });
      });
    }
    let queueDepth: number | null = null;
    try {
      const ci = await this.bus.jsm.consumers.info(d.promptsStream, workerConsumer(d));
      queueDepth = ci.num_pending + ci.num_ack_pending;
    } catch { /* reported as null */ }
    const distributed = {
      version: step, waitSeconds: (performance.now() - t0) / 1000, queueDepth,
      staleness: { mean: lags.reduce((a, b) => a + b, 0) / lags.length, max: Math.max(...lags) },
      dropped, duplicates, totals: { ...this.totals },
      workers: Object.fromEntries(Object.entries(workers).map(([id, w]) => [id, { groups: w.groups, rolloutsPerSecond: w.seconds > 0 ? w.rollouts / w.seconds : null }])),
    };
    return { rollouts, generated, distributed };
  }

  /** the first valid group of each prompt of `step`, in stream order */
  private async readGroups(prompts: StepPrompt[], step: number): Promise<{ have: Map<number, GroupMsg>; dropped: number; duplicates: number }> {
    const d = this.bus.d;
    const c = this.trainer.config;
    const deadline = this.opts.stepTimeoutMs ? Date.now() + this.opts.stepTimeoutMs : Infinity;
    for (;;) {
      const have = new Map<number, GroupMsg>();
      let dropped = 0, duplicates = 0;
      let consumer: Consumer | null = null;
      try {
        consumer = await this.bus.js.consumers.get(d.groupsStream, { filter_subjects: stepGroupsFilter(d, step), deliver_policy: DeliverPolicy.All });
        while (have.size < prompts.length) {
          if (Date.now() > deadline) throw new StepTimeout(`learner: step ${step}: ${have.size} of ${prompts.length} groups after ${this.opts.stepTimeoutMs} ms (are workers running on ${d.server}?)`);
          const m = await consumer.next({ expires: 1000 });
          if (!m) continue;
          const g = fromJson<GroupMsg>(m.data, `group ${m.subject}`);
          const lag = step - g.version;
          if (have.has(g.prompt)) duplicates++;
          else if (g.step !== step || g.prompt < 0 || g.prompt >= prompts.length) throw new Error(`learner: ${m.subject} holds a group of step ${g.step} prompt ${g.prompt}`);
          else if (lag < 0 || lag > d.maxStaleness) {
            dropped++;
            await this.publishPrompt(step, g.prompt, g.attempt + 1);
          } else {
            const pr = prompts[g.prompt];
            if (g.index !== pr.index || g.promptIds.join() !== pr.ids.join()) throw new Error(`learner: group ${g.rolloutId} from worker ${g.worker} was made for dataset row ${g.index} with ${g.promptIds.length} prompt tokens; the learner has row ${pr.index} with ${pr.ids.length} (do the worker and the learner use the same data and tokenizer?)`);
            if (g.responses.length !== c.samplesPerPrompt) throw new Error(`learner: group ${g.rolloutId} has ${g.responses.length} responses, samplesPerPrompt is ${c.samplesPerPrompt}`);
            have.set(g.prompt, g);
          }
        }
        return { have, dropped, duplicates };
      } catch (e) {
        if (e instanceof StepTimeout || !isTransient(e)) throw e;
        await new Promise(r => setTimeout(r, 250)); // the server restarting: read the step again from the start
      } finally {
        await consumer?.delete().catch(() => false);
      }
    }
  }
}

class StepTimeout extends Error {}
