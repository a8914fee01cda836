/**
 * A rollout worker of a distributed GRPO run (src/dist/worker.ts, docs/distributed.md):
 *   npm run worker -- --server nats://10.0.0.5:4222 [--run dpad] [--weights weights/demo] [--id gpu3]
 * It connects to the server, reads the run's config and data spec that the learner published,
 * and makes scored groups until stopped (Ctrl-C). Start as many as you like, on any machine that
 * reaches the server and has the same --weights (base policy, tokenizer, CLIP) and data.
 */
import * as os from 'node:os';
import { DEFAULT_WEIGHTS, initBackend, loadPolicyFrom, loadScorerFrom, openDataset, readTrainConfig, runCli, trainConfig } from '../src/index.ts';
import { openBus, readRunInfo } from '../src/dist/bus.ts';
import { RolloutWorker } from '../src/dist/worker.ts';

const SPEC = {
  name: 'npm run worker --',
  summary: 'A rollout worker: pulls prompts from the NATS JetStream work queue, samples and scores G responses per prompt with the newest allowed weights version, publishes the groups.',
  options: {
    config: { type: 'string', placeholder: '<file>', help: "a training config whose 'distributed' section names the server, streams and bucket (else --server/--run and the defaults)" },
    server: { type: 'string', placeholder: '<url>', help: "the NATS server (overrides the config's distributed.server)" },
    run: { type: 'string', help: "the run name (overrides the config's distributed.run)" },
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: "a weights directory with policy/ (and clip/ for the DPAD reward): the learner's base" },
    id: { type: 'string', default: `${os.hostname()}-${process.pid}`, help: 'this worker in the logs' },
    wait: { type: 'int', default: 600, min: 1, help: 'seconds to wait for the learner to publish the run' },
  },
  examples: ['npm run worker -- --server nats://127.0.0.1:4222', 'npm run worker -- --config examples/configs/world.json --server nats://10.0.0.5:4222 --id box2'],
} as const;

await runCli(SPEC, async args => {
  const base = args.config ? readTrainConfig(args.config) : trainConfig({ distributed: {} });
  const d = { ...(base.distributed ?? trainConfig({ distributed: {} }).distributed!), ...(args.server ? { server: args.server } : {}), ...(args.run ? { run: args.run } : {}) };
  const dist = trainConfig({ ...base, distributed: d }, 'worker').distributed!;
  await initBackend();
  const bus = await openBus(dist, { name: `worker ${args.id}` });
  const deadline = Date.now() + args.wait * 1000;
  let info = await readRunInfo(bus);
  while (!info) {
    if (Date.now() > deadline) throw new Error(`worker: no run '${dist.run}' published on ${dist.server} after ${args.wait} s (start the learner: npm run learner)`);
    await new Promise(r => setTimeout(r, 500));
    info = await readRunInfo(bus);
  }
  const cfg = trainConfig({ ...info.config, distributed: dist }, `${dist.weightsBucket}:${dist.run}/run`);
  const policy = loadPolicyFrom(args.weights);
  const scorer = cfg.rewards.variant === 'dpad' ? loadScorerFrom(args.weights) : null;
  const data = await openDataset(info.data, { frame: policy.viewSize, subset: info.subset, seed: cfg.seed }).train();
  if (data.size !== info.size) throw new Error(`worker: ${info.data} has ${data.size} rows here, ${info.size} at the learner`);
  const worker = new RolloutWorker(bus, { id: args.id, policy, scorer, data, config: cfg, onGroup: g => console.error(`worker ${args.id}: step ${g.step} prompt ${g.prompt} v${g.version}: ${g.responses.length} rollouts in ${(g.seconds.generate + g.seconds.score).toFixed(2)} s`) });
  const stop = () => worker.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const s = await worker.run();
  console.error(`worker ${args.id}: ${s.groups} groups, ${s.rollouts} rollouts, ${(s.rollouts / Math.max(1e-9, s.busySeconds)).toFixed(2)} rollouts/s busy, ${s.obsolete} obsolete prompts, ${s.loads} weight loads`);
  await bus.close();
});
