/**
 * Faults on loopback (a real nats-server per test): nothing lost, nothing trained twice.
 *   - a worker killed mid-group: its prompt is redelivered after ackWait, the group trained once;
 *   - the learner killed mid-step: it resumes from its checkpoint and re-reads the same groups;
 *   - the server restarted (JetStream on disk): no acknowledged group is lost.
 * Each run is compared byte for byte with the single-process trainer on the same config and seed.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { groupSubject, openBus, toJson, type Bus } from '../src/dist/bus.ts';
import { Learner } from '../src/dist/learner.ts';
import { startNatsServer, type LocalServer } from '../src/dist/server.ts';
import { RolloutWorker, type FaultHook } from '../src/dist/worker.ts';
import { trainConfig, type TrainConfig } from '../src/rl/config.ts';
import { GrpoTrainer, type RolloutSource } from '../src/rl/trainer.ts';
import { tinyPolicy, worldDataset } from './helpers/world.ts';

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), p));
const conf = (outDir: string, server: string, run: string, extra: object = {}): TrainConfig => trainConfig({
  seed: 5, promptsPerStep: 2, samplesPerPrompt: 2, maxResponseTokens: 6, lr: 1e-3, steps: 4, checkpointEvery: 2, outDir,
  rewards: { variant: 'baseline' }, distributed: { server, run, ackWaitSeconds: 1.5 }, ...extra,
});

type Params = Map<string, Buffer>;
const params = (m: { namedParameters(): Map<string, { dataSync(): unknown }> }): Params =>
  new Map([...m.namedParameters()].map(([k, v]) => [k, Buffer.from(Float32Array.from(v.dataSync() as Float32Array).buffer)]));

function assertSame(a: Params, b: Params, what: string) {
  for (const [k, v] of a) assert.ok(v.equals(b.get(k)!), `${what}: parameter ${k} differs`);
}

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not done after ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(t);
  }
}

async function singleProcess(cfg: TrainConfig): Promise<Params> {
  const { policy, reference } = tinyPolicy(2);
  const t = new GrpoTrainer({ config: { ...cfg, distributed: null, outDir: tmp('dpad-single-') }, policy, reference, scorer: null, data: worldDataset(6) });
  await t.run();
  const p = params(policy.model);
  policy.model.dispose(); reference.dispose(); t.optimizer.dispose();
  return p;
}

/** Workers running in this process (each its own connection and model); stop() ends them. */
async function startWorkers(cfg: TrainConfig, faults: (FaultHook | undefined)[]) {
  const buses: Bus[] = [];
  const workers: RolloutWorker[] = [];
  const running: Promise<unknown>[] = [];
  for (let i = 0; i < faults.length; i++) {
    const bus = await openBus(cfg.distributed!, { name: `worker-${i}` });
    const { policy, reference } = tinyPolicy(100 + i);
    reference.dispose();
    const w = new RolloutWorker(bus, { id: `w${i}`, policy, scorer: null, data: worldDataset(6), config: cfg, fault: faults[i] });
    buses.push(bus); workers.push(w);
    running.push(w.run().finally(() => policy.model.dispose()));
  }
  return {
    workers,
    stop: async () => {
      for (const w of workers) w.stop();
      await Promise.allSettled(running);
      for (const b of buses) if (!b.nc.isClosed()) await b.close();
    },
  };
}

/** One learner run over the server; `wrap` may replace the trainer's rollout source (to inject a fault). */
async function learn(cfg: TrainConfig, opts: { fresh: boolean; wrap?: (src: RolloutSource) => RolloutSource }) {
  const bus = await openBus(cfg.distributed!, { name: 'learner' });
  const { policy, reference } = tinyPolicy(2);
  const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer: null, data: worldDataset(6) });
  const learner = new Learner(bus, trainer, { data: 'test:world6', stepTimeoutMs: 60_000 });
  if (opts.wrap) trainer.rolloutSource = opts.wrap(trainer.rolloutSource!);
  try {
    await learner.run({ fresh: opts.fresh });
    return { params: params(policy.model), totals: learner.totals, step: trainer.step, logs: trainer.logs };
  } finally {
    await bus.close();
    policy.model.dispose(); reference.dispose(); trainer.optimizer.dispose();
  }
}

const logSteps = (dir: string) => fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l).step as number);

let server: LocalServer;
test.before(async () => { server = await startNatsServer(); });
test.after(async () => { await server.stop(); });

test('a worker killed mid-group: the prompt is redelivered after the ack timeout and its group trained once', async () => {
  const cfg = conf(tmp('dpad-kill-w-'), server.url, 'killw');
  const single = await singleProcess(cfg);
  // w0 dies after generating its first group (nothing published, nothing acked); w1 dies after
  // publishing one (stored, not acked): that prompt is redelivered and made again (same rollout id:
  // stored once), and we also store a copy under another message id, as a redelivery past the
  // server's duplicate window would: the learner keeps the first group of the prompt
  const bus = await openBus(cfg.distributed!, { name: 'injector' });
  let w1Group: string | null = null;
  const ws = await startWorkers(cfg, [
    at => at === 'generated',
    async (at, m, g) => {
      if (at !== 'published' || m.step !== 1) return false;
      w1Group = g.rolloutId;
      await bus.js.publish(groupSubject(cfg.distributed!, m.step, m.prompt), toJson(g), { msgID: `late-copy.${g.rolloutId}` });
      return true;
    },
    undefined,
  ]);
  try {
    const t0 = Date.now();
    const r = await bounded(learn(cfg, { fresh: true }), 180_000, 'learner');
    assertSame(single, r.params, 'after the killed workers');
    assert.equal(ws.workers.map(w => w.killed), [true, true, false]);
    assert.ok(w1Group !== null, 'w1 published a group before dying');
    // the regenerated group has the same rollout id: the server stored it once (message id); the
    // late copy under another id is counted if the learner's scan reaches it before the step is
    // complete (the other prompt's group may complete it first), and never trained (parameters above)
    assert.ok(r.totals.duplicates <= 1, `duplicates ${r.totals.duplicates}`);
    assert.is(r.totals.dropped, 0);
    assert.ok(Date.now() - t0 >= 1500, 'waited for the ack timeout');
    assert.equal(logSteps(cfg.outDir), [1, 2, 3, 4]);
  } finally {
    await ws.stop();
    await bus.close();
  }
});

test('the learner killed mid-step resumes from its checkpoint and the stream: the same parameters, each step logged once', async () => {
  const cfg = conf(tmp('dpad-kill-l-'), server.url, 'killl');
  const single = await singleProcess(cfg);
  const ws = await startWorkers(cfg, [undefined, undefined]);
  try {
    // killed in step 4 (0-based 3) after its groups were read; the last checkpoint is step 2's
    const kill = (src: RolloutSource): RolloutSource => async (prompts, step) => {
      const r = await src(prompts, step);
      if (step === 3) throw new Error('killed');
      return r;
    };
    await bounded(learn(cfg, { fresh: true, wrap: kill }), 180_000, 'learner 1').then(() => assert.unreachable('the kill'), e => assert.is((e as Error).message, 'killed'));
    assert.equal(logSteps(cfg.outDir), [1, 2, 3]);
    const r = await bounded(learn(cfg, { fresh: false }), 180_000, 'learner 2');
    assert.is(r.step, 4);
    assert.equal(r.logs.map(l => l.step), [3, 4], 'resumed at the checkpoint of step 2');
    assertSame(single, r.params, 'resumed learner');
    assert.equal(logSteps(cfg.outDir), [1, 2, 3, 4]);
  } finally {
    await ws.stop();
  }
});

test('the server restarted mid-run (JetStream on disk) loses no acknowledged group; the run is unchanged', async () => {
  const own = await startNatsServer();
  const cfg = conf(tmp('dpad-restart-'), own.url, 'restart');
  const single = await singleProcess(cfg);
  const ws = await startWorkers(cfg, [undefined, undefined]);
  let stored = -1;
  let current = own;
  try {
    const restart = (src: RolloutSource): RolloutSource => async (prompts, step) => {
      if (step === 2) {
        const bus = await openBus(cfg.distributed!, { name: 'probe' });
        stored = (await bus.jsm.streams.info(cfg.distributed!.groupsStream)).state.messages;
        await bus.close();
        await current.stop();
        current = await startNatsServer({ storeDir: own.storeDir, port: own.port });
        const after = await openBus(cfg.distributed!, { name: 'probe2' });
        assert.is((await after.jsm.streams.info(cfg.distributed!.groupsStream)).state.messages, stored, 'every stored group survived the restart');
        await after.close();
      }
      return src(prompts, step);
    };
    const r = await bounded(learn(cfg, { fresh: true, wrap: restart }), 180_000, 'learner');
    assert.is(stored, 4, 'steps 1 and 2: 2 groups each, acknowledged before the restart');
    assertSame(single, r.params, 'across the restart');
    assert.equal(logSteps(cfg.outDir), [1, 2, 3, 4]);
  } finally {
    await ws.stop();
    await current.stop();
  }
});

test.run();
