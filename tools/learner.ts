/**
 * The learner of a distributed GRPO run (src/dist/learner.ts, docs/distributed.md):
 *   npm run learner -- --config examples/configs/world.json [--server nats://host:4222] [--weights weights/demo] [--fresh]
 *   npm run learner -- --config examples/configs/world.json --local 2     # a local nats-server and 2 worker processes
 * It publishes the run, the weights versions and the prompts; trains on the workers' groups with the
 * single-process trainer's phases; writes the same run folder (log.jsonl with a `distributed` entry
 * per step: queue depth, staleness, drops, rollouts/s per worker; checkpoints; curves).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_WEIGHTS, GrpoTrainer, initBackend, loadPolicyFrom, loadScorerFrom, openDataset, readTrainConfig, referenceCopy, runCli, trainConfig, writeJsonAtomic } from '../src/index.ts';
import { openBus } from '../src/dist/bus.ts';
import { Learner } from '../src/dist/learner.ts';
import { startNatsServer, type LocalServer } from '../src/dist/server.ts';

const SPEC = {
  name: 'npm run learner --',
  summary: 'The learner of distributed GRPO over NATS JetStream: publishes prompts and versioned weights, trains on the scored groups the workers publish (maxStaleness 0: identical to npm run train).',
  options: {
    config: { type: 'string', placeholder: '<file>', required: true, help: "a training config JSON; its 'distributed' section (or the defaults) says the server, streams and maxStaleness" },
    server: { type: 'string', placeholder: '<url>', help: "the NATS server (overrides distributed.server)" },
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/ and clip/ (DPAD rewards)' },
    out: { type: 'string', placeholder: '<dir>', help: "the run folder (default: the config's outDir)" },
    fresh: { type: 'boolean', help: "start over (the run's checkpoints, prompts, groups and weights are cleared)" },
    'world-size': { type: 'int', default: 512, min: 1, help: "prompts drawn from the world's train split (without --data)" },
    data: { type: 'string', placeholder: '<spec>', help: 'the training data spec (as npm run train); the workers open the same' },
    subset: { type: 'int', default: 3000, min: 1, help: 'rows of a parquet used' },
    steps: { type: 'int', min: 0, help: "override the config's steps" },
    local: { type: 'int', default: 0, min: 0, help: 'start a nats-server on 127.0.0.1 and this many worker processes (one machine)' },
  },
  examples: ['npm run learner -- --config examples/configs/world.json --local 2 --fresh', 'npm run learner -- --config run.json --server nats://10.0.0.5:4222'],
} as const;

await runCli(SPEC, async args => {
  const file = readTrainConfig(args.config);
  let server: LocalServer | null = null;
  const children: ChildProcess[] = [];
  if (args.local) server = await startNatsServer();
  const dist = { ...(file.distributed ?? trainConfig({ distributed: {} }).distributed!), ...(args.server ? { server: args.server } : {}), ...(server ? { server: server.url } : {}) };
  const cfg = trainConfig({ ...file, distributed: dist, ...(args.out ? { outDir: args.out } : {}), ...(args.steps !== undefined ? { steps: args.steps } : {}) }, args.config);
  try {
    await initBackend();
    const policy = loadPolicyFrom(args.weights);
    const reference = cfg.lora ? null : referenceCopy(policy.model);
    const scorer = cfg.rewards.variant === 'dpad' ? loadScorerFrom(args.weights) : null;
    const spec = args.data ?? `world:train:${args['world-size']}`;
    const data = await openDataset(spec, { frame: policy.viewSize, subset: args.subset, seed: cfg.seed }).train();
    const trainer = new GrpoTrainer({ config: cfg, policy, reference, scorer, data });
    if (!args.fresh) trainer.resumableCheckpoint();
    fs.mkdirSync(cfg.outDir, { recursive: true });
    writeJsonAtomic(path.join(cfg.outDir, 'config.json'), cfg);
    writeJsonAtomic(path.join(cfg.outDir, 'run.json'), { weights: path.resolve(args.weights) });
    const bus = await openBus(cfg.distributed!, { name: 'learner' });
    for (let i = 0; i < args.local; i++) {
      const c = spawn(process.execPath, [...process.execArgv, path.join(import.meta.dirname, 'worker.ts'), '--server', cfg.distributed!.server, '--run', cfg.distributed!.run, '--weights', args.weights, '--id', `local${i}`], { stdio: ['ignore', 'inherit', 'inherit'] });
      children.push(c);
    }
    const learner = new Learner(bus, trainer, { data: spec, subset: args.subset });
    const t0 = performance.now();
    const logs = await learner.run({ fresh: args.fresh });
    const secs = (performance.now() - t0) / 1000;
    const n = logs.length * cfg.promptsPerStep * cfg.samplesPerPrompt;
    console.log(`learner: ${logs.length} steps, ${n} rollouts in ${secs.toFixed(1)} s (${(n / secs).toFixed(2)} rollouts/s, ${(secs / Math.max(1, logs.length)).toFixed(2)} s/step); dropped ${learner.totals.dropped}, duplicates ${learner.totals.duplicates}; ${cfg.outDir}`);
    await bus.close();
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map(c => new Promise(r => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await server?.stop();
  }
});
