/**
 * Distributed GRPO over a real nats-server on loopback: with maxStaleness 0, one learner and two
 * workers (in this process, each with its own connection and model) train parameters that are
 * byte-identical to the single-process trainer's on the same config and seed.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openBus, type Bus } from '../src/dist/bus.ts';
import { Learner } from '../src/dist/learner.ts';
import { startNatsServer, type LocalServer } from '../src/dist/server.ts';
import { RolloutWorker, type FaultHook } from '../src/dist/worker.ts';
import { trainConfig, type TrainConfig } from '../src/rl/config.ts';
import { GrpoTrainer, rolloutRng } from '../src/rl/trainer.ts';
import type { ClipScorer } from '../src/models/clip/scorer.ts';
import { tinyPolicy, tinyScorer, worldDataset } from './helpers/world.ts';

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));

export function distConfig(outDir: string, server: string, extra: object = {}): TrainConfig {
  return trainConfig({
    seed: 3, promptsPerStep: 2, samplesPerPrompt: 2, maxResponseTokens: 6, lr: 1e-3, steps: 3, checkpointEvery: 1, outDir,
    distributed: { server, ackWaitSeconds: 2 }, ...extra,
  });
}

function params(m: { namedParameters(): Map<string, { dataSync(): unknown }> }): Map<string, Buffer> {
  return new Map([...m.namedParameters()].map(([k, v]) => [k, Buffer.from(Float32Array.from(v.dataSync() as Float32Array).buffer)]));
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not done after ${ms} ms`)), ms); })]).finally(() => clearTimeout(t));
}

/** The single-process run of `cfg` (its distributed section ignored): the final parameters. */
async function singleProcess(cfg: TrainConfig, scorer: ClipScorer | null): Promise<Map<string, Buffer>> {
  const { policy, reference } = tinyPolicy(2);
  const t = new GrpoTrainer({ config: { ...cfg, distributed: null, outDir: tmp('dpad-single-') }, policy, reference, scorer, data: worldDataset(6) });
  await t.run();
  const p = params(policy.model);
  policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
  return p;
}

/** One learner + workers over `server`: the learner's final parameters and the workers' counts. */
async function distributed(cfg: TrainConfig, scorer: ClipScorer | null, opts: { workers?: number; assign?: boolean; fault?: (i: number) => FaultHook | undefined; maxSteps?: number; fresh?: boolean } = {}) {
  const n = opts.workers ?? 2;
  const buses: Bus[] = [];
  const workers: RolloutWorker[] = [];
  const running: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const bus = await openBus(cfg.distributed!, { name: `worker-${i}` });
    buses.push(bus);
    const { policy, reference } = tinyPolicy(100 + i); // other weights: version 0 comes from the learner
    reference.dispose();
    const w = new RolloutWorker(bus, { id: `w${i}`, policy, scorer, data: worldDataset(6), config: cfg, assign: opts.assign ? { index: i, of: n } : undefined, fault: opts.fault?.(i) });
    workers.push(w);
    running.push(w.run().finally(() => policy.model.dispose()));
  }
  const lbus = await openBus(cfg.distributed!, { name: 'learner' });
  const { policy, reference } = tinyPolicy(2);
  const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer, data: worldDataset(6) });
  const learner = new Learner(lbus, trainer, { data: 'test:world6', stepTimeoutMs: 60_000 });
  try {
    await learner.run({ fresh: opts.fresh ?? true, maxSteps: opts.maxSteps });
    return { params: params(policy.model), workers: workers.map(w => ({ ...w.stats, killed: w.killed })), totals: learner.totals, step: trainer.step };
  } finally {
    for (const w of workers) w.stop();
    await Promise.allSettled(running);
    for (const b of buses) if (!b.nc.isClosed()) await b.close();
    await lbus.close();
    policy.model.dispose(); reference.dispose(); trainer.optimizer.dispose();
  }
}

function assertSame(a: Map<string, Buffer>, b: Map<string, Buffer>, what: string) {
  assert.equal([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.ok(v.equals(b.get(k)!), `${what}: parameter ${k} differs`);
}

let server: LocalServer;
test.before(async () => { server = await startNatsServer(); });
test.after(async () => { await server.stop(); });

test('the RNG of a (step, prompt) is a function of the seed and that position only', () => {
  const a = rolloutRng(3, 1, 0), b = rolloutRng(3, 1, 0), c = rolloutRng(3, 1, 1), d = rolloutRng(3, 2, 0);
  const x = [a(), a()];
  assert.equal([b(), b()], x);
  assert.not.equal(c(), x[0]);
  assert.not.equal(d(), x[0]);
});

test('maxStaleness 0: learner + 2 workers (fixed assignment) train byte-identical parameters to one process; the log has the health figures', async () => {
  const scorer = tinyScorer();
  const out = tmp('dpad-dist-');
  const cfg = distConfig(out, server.url, { distributed: { server: server.url, run: 'sync', ackWaitSeconds: 2 } });
  const single = await singleProcess(cfg, scorer);
  const dist = await bounded(distributed(cfg, scorer, { assign: true }), 180_000, 'distributed run');
  assertSame(single, dist.params, 'learner + 2 workers');
  assert.equal(dist.workers.map(w => w.groups), [3, 3], 'each worker made its own prompts (p % 2)');
  assert.equal(dist.totals, { dropped: 0, duplicates: 0 });
  const log = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l));
  assert.equal(log.map((l: { step: number }) => l.step), [1, 2, 3]);
  const d = log[2].distributed;
  assert.is(d.version, 2);
  assert.equal(d.staleness, { mean: 0, max: 0 });
  assert.equal(Object.keys(d.workers).sort(), ['w0', 'w1']);
  assert.ok(d.workers.w0.rolloutsPerSecond > 0);
  assert.type(d.queueDepth, 'number');
  assert.ok(log[2].seconds.total > 0, 'learner step time');
  scorer.dispose();
});

test('maxStaleness 0 with a shared queue (any worker takes any prompt): the same parameters', async () => {
  const cfg = distConfig(tmp('dpad-dist-q-'), server.url, { rewards: { variant: 'baseline' }, distributed: { server: server.url, run: 'shared', ackWaitSeconds: 2 } });
  const single = await singleProcess(cfg, null);
  const dist = await bounded(distributed(cfg, null), 180_000, 'distributed run');
  assertSame(single, dist.params, 'shared queue');
  assert.is(dist.workers.reduce((a, w) => a + w.groups, 0), 6);
});

test.run();
