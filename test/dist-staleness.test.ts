/**
 * maxStaleness > 0 on loopback (a real nats-server, one learner and one worker in this process):
 *   - a group generated with weights version v - 1 and trained at version v: the loss and gradients
 *     use the log-probs the worker recorded at generation as logp_old (checked against actorLoss
 *     computed here with those log-probs and the learner's current model), and the PPO ratio is not 1;
 *   - a group whose version lag exceeds maxStaleness (published by hand): dropped, counted in the
 *     learner's totals and the JSONL log, its prompt republished (attempt + 1), and not trained: the
 *     parameters equal those of the same run without it.
 * The learner's steps are paced (it leaves step s only once the worker published every group of
 * step s + 1), so every group of step s >= 1 is made with version s - 1 and both runs are deterministic.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromJson, groupSubject, openBus, promptSubject, toJson, type Bus, type GroupMsg, type PromptMsg } from '../src/dist/bus.ts';
import type { DistRollout } from '../src/dist/gradients.ts';
import { Learner } from '../src/dist/learner.ts';
import { startNatsServer, type LocalServer } from '../src/dist/server.ts';
import { RolloutWorker } from '../src/dist/worker.ts';
import type { RewardFn } from '../src/rewards/registry.ts';
import { actorLoss } from '../src/rl/actor.ts';
import { trainConfig, type TrainConfig } from '../src/rl/config.ts';
import { encodeStepPrompt, GrpoTrainer, type Rollout, type StepPrompt } from '../src/rl/trainer.ts';
import { referenceLogProbs, responseIds, responseLogits, responseLogProbs } from '../src/rl/update.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));
const P = 2, G = 2, STEPS = 3;
const conf = (outDir: string, server: string, run: string): TrainConfig => trainConfig({
  seed: 11, promptsPerStep: P, samplesPerPrompt: G, maxResponseTokens: 6, lr: 1e-2, steps: STEPS, checkpointEvery: STEPS, microBatch: 2, outDir,
  rewards: { variant: 'baseline' }, distributed: { server, run, maxStaleness: 1, ackWaitSeconds: 10 },
});

/** a reward that differs between responses (a hash of the text), so the advantages are not 0 */
const REWARD: readonly RewardFn[] = [{
  name: 'text_hash',
  fn: c => ({ value: [...c.parsed.text].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 1009, 7) / 1009 }),
}];

type Params = Map<string, Buffer>;
const params = (m: { namedParameters(): Map<string, { dataSync(): unknown }> }): Params =>
  new Map([...m.namedParameters()].map(([k, v]) => [k, Buffer.from(Float32Array.from(v.dataSync() as Float32Array).buffer)]));

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not done after ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(t);
  }
}

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms`);
    await new Promise(r => setTimeout(r, 20));
  }
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>, mask?: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (!mask || mask[i]) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** the log-probs [G, R] (flat, with the mask) of a group's responses under `trainer`'s current policy */
async function groupLogProbs(trainer: GrpoTrainer, g: GroupMsg): Promise<{ lp: Float32Array; old: Float32Array; mask: Float32Array }> {
  const pr = encodeStepPrompt(trainer.policy, trainer.config, await trainer.data.get(g.index), g.index);
  const rs: Rollout[] = g.responses.map((response, k) => ({ index: k, prompt: 0, promptIds: g.promptIds, response, text: '', reward: 0, components: {} }));
  const batch = trainer.packBatch(rs, [pr], trainer.policy.model.config.pad_token_id);
  try {
    const R = batch.seq.responseLength;
    const old = new Float32Array(rs.length * R);
    g.logprobs.forEach((l, k) => old.set(l, k * R));
    const t = responseLogProbs(trainer.policy.model, batch.seq, trainer.config.temperature);
    const lp = t.dataSync() as Float32Array;
    t.dispose();
    return { lp, old, mask: batch.mask };
  } finally {
    batch.dispose();
    tf.dispose([pr.pixels, ...(pr.embeds ? [pr.embeds] : [])]);
  }
}

/** Step 1's loss recomputed here: actorLoss with logp_old = the recorded log-probs, new = the current model's. */
function independentLoss(trainer: GrpoTrainer, prompts: StepPrompt[], rollouts: DistRollout[], adv: Float32Array) {
  const model = trainer.policy.model;
  const cfg = trainer.config;
  const batch = trainer.packBatch(rollouts, prompts, model.config.pad_token_id);
  const B = rollouts.length, R = batch.seq.responseLength;
  const old = new Float32Array(B * R);
  rollouts.forEach((r, b) => old.set(r.logprobs, b * R));
  const vars = [...model.trainableParameters()];
  const inputs = tf.tidy(() => {
    const mask = tf.tensor2d(batch.mask, [B, R]);
    return {
      mask, responses: responseIds(batch.seq), oldLogProbs: tf.tensor2d(old, [B, R]),
      refLogProbs: referenceLogProbs(model, trainer.reference!, batch.seq, cfg.temperature),
      advantages: tf.mul(tf.tensor2d(batch.adv(adv), [B, 1]), mask) as tf.Tensor2D,
      current: responseLogProbs(model, batch.seq, cfg.temperature),
    };
  });
  try {
    let loss = NaN;
    const { value, grads } = tf.variableGrads(() => {
      const out = actorLoss({ ...inputs, logits: responseLogits(model, batch.seq) }, cfg);
      loss = out.loss.dataSync()[0];
      return out.loss;
    }, vars.map(([, v]) => v));
    value.dispose();
    const byVar = new Map(vars.map(([n, v]) => [v.name, n]));
    const g = new Map(Object.entries(grads).map(([vn, t]) => { const d = t.dataSync() as Float32Array; t.dispose(); return [byVar.get(vn)!, d]; }));
    // the ratio-1 loss (logp_old = the current model's log-probs): what the trainer's own gradients would use
    const ratio1 = tf.tidy(() => actorLoss({ ...inputs, oldLogProbs: inputs.current, logits: responseLogits(model, batch.seq) }, cfg).loss.dataSync()[0]);
    const cur = inputs.current.dataSync() as Float32Array;
    let ratioDev = 0;
    for (let i = 0; i < cur.length; i++) if (batch.mask[i]) ratioDev = Math.max(ratioDev, Math.abs(Math.exp(cur[i] - old[i]) - 1));
    return { loss, grads: g, ratio1, ratioDev };
  } finally {
    tf.dispose(inputs);
    batch.dispose();
  }
}

interface Step1Check {
  versions: number[];
  adv: number[];
  loss: number;
  ppoKl: number;
  grads: Map<string, Float32Array>;
  independent: ReturnType<typeof independentLoss>;
}

/**
 * One learner + one worker, paced. `inject` (run once the step-1 groups are in, before the learner
 * publishes step 2's prompts) may publish extra groups.
 */
async function pacedRun(cfg: TrainConfig, opts: { inject?: (learner: Learner, template: GroupMsg, bus: Bus) => Promise<void>; settle?: (groups: GroupMsg[]) => boolean } = {}) {
  const d = cfg.distributed!;
  const groups: GroupMsg[] = [];
  const wbus = await openBus(d, { name: 'worker' });
  const w = tinyPolicy(100); // other weights: version 0 comes from the learner
  w.reference.dispose();
  const worker = new RolloutWorker(wbus, { id: 'w0', policy: w.policy, scorer: null, data: worldDataset(6), config: cfg, rewards: REWARD, onGroup: g => groups.push(g) });
  const running = worker.run().finally(() => w.policy.model.dispose());
  // every prompt message published (core subscription to the work queue's subject)
  const tbus = await openBus(d, { name: 'observer' });
  const prompts: PromptMsg[] = [];
  const sub = tbus.nc.subscribe(promptSubject(d), { callback: (_e, m) => { prompts.push(fromJson<PromptMsg>(m.data, 'prompt')); } });
  await tbus.nc.flush();
  const lbus = await openBus(d, { name: 'learner' });
  const { policy, reference } = tinyPolicy(2);
  const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer: null, data: worldDataset(6), rewards: REWARD });
  const learner = new Learner(lbus, trainer, { data: 'test:world6', stepTimeoutMs: 60_000 });
  const of = (s: number) => groups.filter(g => g.step === s && g.attempt === 0);
  let atGeneration = -1;
  const src = trainer.rolloutSource!;
  trainer.rolloutSource = async (ps, step) => {
    const r = await src(ps, step);
    if (step + 1 < STEPS) await waitFor(() => of(step + 1).length === P, 60_000, `the worker's groups of step ${step + 1}`);
    if (step === 0) {
      // the learner still holds version 0: the step-1 groups' recorded log-probs are version 0's
      for (const g of of(1)) {
        const { lp, old, mask } = await groupLogProbs(trainer, g);
        atGeneration = Math.max(atGeneration, maxAbs(lp, old, mask));
      }
      await opts.inject?.(learner, of(1)[0], tbus);
    }
    return r;
  };
  let step1: Step1Check | null = null;
  const stale = trainer.gradients.bind(trainer);
  trainer.gradients = (ps, rs, adv) => {
    const ind = trainer.step === 1 ? independentLoss(trainer, ps, rs as DistRollout[], adv) : null;
    const pg = stale(ps, rs, adv);
    if (ind) {
      step1 = {
        versions: (rs as DistRollout[]).map(r => r.version), adv: Array.from(adv), loss: pg.loss, ppoKl: pg.metrics.ppoKl, independent: ind,
        grads: new Map([...pg.grads].map(([n, t]) => [n, Float32Array.from(t.dataSync() as Float32Array)])),
      };
    }
    return pg;
  };
  try {
    await learner.run({ fresh: true });
    // a republished prompt: let the worker make it again before it stops
    if (opts.settle && prompts.some(m => m.attempt > 0)) await waitFor(() => opts.settle!(groups), 60_000, 'the worker remaking the republished prompt');
    return { params: params(policy.model), totals: { ...learner.totals }, step1: step1 as Step1Check | null, atGeneration, groups, prompts, learner, log: fs.readFileSync(path.join(cfg.outDir, 'log.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l)) };
  } finally {
    worker.stop();
    await running;
    sub.unsubscribe();
    for (const b of [wbus, tbus, lbus]) if (!b.nc.isClosed()) await b.close();
    policy.model.dispose(); reference.dispose(); trainer.optimizer.dispose();
  }
}

let server: LocalServer;
let clean: Awaited<ReturnType<typeof pacedRun>>;
test.before(async () => { server = await startNatsServer(); });
test.after(async () => { await server?.stop(); });

test('maxStaleness 1: a group made with version v - 1 is trained at v with logp_old = its generation-time log-probs', async () => {
  const cfg = conf(tmp('dpad-stale-a-'), server.url, 'stalea');
  clean = await bounded(pacedRun(cfg), 180_000, 'the paced run');
  assert.ok(clean.atGeneration >= 0 && clean.atGeneration < 1e-4, `the recorded log-probs are version 0's (max |diff| ${clean.atGeneration})`);
  assert.equal(clean.log.map((l: { distributed: { staleness: unknown } }) => l.distributed.staleness), [{ mean: 0, max: 0 }, { mean: 1, max: 1 }, { mean: 1, max: 1 }]);
  assert.equal(clean.totals, { dropped: 0, duplicates: 0 });
  const s = clean.step1!;
  assert.ok(s, 'step 1 was trained');
  assert.equal(s.versions, [0, 0, 0, 0], 'step 1 trains groups of version 0');
  assert.ok(s.adv.some(a => Math.abs(a) > 1e-3), `the advantages are not all 0 (${s.adv})`);
  const ind = s.independent;
  assert.ok(ind.ratioDev > 1e-3, `the PPO ratio differs from 1 (max |ratio - 1| ${ind.ratioDev})`);
  assert.ok(Math.abs(s.ppoKl) > 1e-7, `ppo_kl is not 0 (${s.ppoKl})`);
  assert.ok(Math.abs(s.loss - ind.loss) <= 1e-5 * Math.max(1, Math.abs(ind.loss)), `the learner's loss ${s.loss} is actorLoss with the recorded logp_old, ${ind.loss}`);
  assert.ok(Math.abs(ind.ratio1 - ind.loss) > 1e-5, `the ratio-1 loss ${ind.ratio1} differs from the stale one ${ind.loss} (the test can tell)`);
  assert.equal([...s.grads.keys()].sort(), [...ind.grads.keys()].sort());
  for (const [n, g] of s.grads) {
    const want = ind.grads.get(n)!;
    const scale = Math.max(1e-6, ...Array.from(want, Math.abs));
    assert.ok(maxAbs(g, want) <= 1e-4 * scale, `gradient of ${n}: max |diff| ${maxAbs(g, want)} (scale ${scale})`);
  }
});

test('a group older than the bound is dropped, counted, its prompt republished, and not trained', async () => {
  assert.ok(clean, 'the clean run (previous test) ran');
  const cfg = conf(tmp('dpad-stale-b-'), server.url, 'staleb');
  const d = cfg.distributed!;
  let injected: GroupMsg | null = null;
  const r = await bounded(pacedRun(cfg, {
    // a well-formed group of step 2 prompt 0 made with version 0: lag 2 > maxStaleness 1
    inject: async (learner, template, bus) => {
      const index = learner.indexAt(2, 0);
      const pr = encodeStepPrompt(learner.trainer.policy, cfg, await learner.trainer.data.get(index), index);
      tf.dispose([pr.pixels, ...(pr.embeds ? [pr.embeds] : [])]);
      const g: GroupMsg = { ...template, rolloutId: `${d.run}.2.0.0`, step: 2, prompt: 0, index, attempt: 0, version: 0, worker: 'old', promptIds: pr.ids };
      await bus.js.publish(groupSubject(d, 2, 0), toJson(g), { msgID: `old-group.${g.rolloutId}` });
      injected = g;
    },
    settle: gs => gs.some(g => g.step === 2 && g.prompt === 0 && g.attempt === 1),
  }), 180_000, 'the run with a stale group');
  assert.ok(injected, 'the stale group was published');
  assert.is(r.totals.dropped, 1, 'the learner counted the drop');
  assert.is(r.log[2].distributed.dropped, 1, 'step 3 logs the drop');
  assert.equal(r.log.map((l: { distributed: { totals: { dropped: number } } }) => l.distributed.totals.dropped), [0, 0, 1]);
  const again = r.prompts.filter(m => m.step === 2 && m.prompt === 0);
  assert.equal(again.map(m => m.attempt), [0, 1], 'the prompt was republished with attempt 1');
  assert.equal([again[1].minVersion, again[1].maxVersion], [1, 2]);
  const redone = r.groups.filter(g => g.step === 2 && g.prompt === 0 && g.attempt === 1);
  assert.is(redone.length, 1, 'the worker made the republished prompt again');
  assert.ok(redone[0].version >= 1 && redone[0].version <= 2, `in bounds (version ${redone[0].version})`);
  assert.equal(r.log[2].distributed.staleness, { mean: 1, max: 1 }, 'the trained groups are in bounds');
  for (const [k, v] of clean.params) assert.ok(v.equals(r.params.get(k)!), `parameter ${k} differs from the run without the stale group`);
});

test.run();
