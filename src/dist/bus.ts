/**
 * The JetStream layout of a distributed run (config.distributed), shared by the learner and workers:
 *
 *   <promptsStream>.<run>               work queue of PromptMsg (explicit ack, redelivered after ackWait)
 *   <groupsStream>.<run>.<step>.<p>     scored groups (GroupMsg), kept on disk; the learner reads a
 *                                       step's groups by subject, so a resumed learner re-reads them
 *   object store <weightsBucket>:       <run>/v<version> (weights), <run>/latest ({version}),
 *                                       <run>/run (the config and data spec the workers use)
 *
 * Publishes carry a message id (Nats-Msg-Id), so a retried publish within the duplicate window is
 * stored once; past the window the learner keeps the first valid group of each (step, prompt).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { DistributedConfig, TrainConfig } from '../rl/config.ts';

/** A prompt for a worker: prompt `prompt` (0-based in the step) of step `step`, dataset row `index`. */
export interface PromptMsg {
  run: string;
  step: number;
  prompt: number;
  index: number;
  /** 0, or n after n groups of this (step, prompt) were dropped as too stale */
  attempt: number;
  /** the weights versions a group may be generated with: [step - maxStaleness, step] */
  minVersion: number;
  maxVersion: number;
}

/** A scored group: the G responses to one prompt, with what the learner needs to train on it. */
export interface GroupMsg {
  rolloutId: string;
  step: number;
  prompt: number;
  index: number;
  attempt: number;
  /** the weights version the responses were sampled with */
  version: number;
  worker: string;
  promptIds: number[];
  responses: number[][];
  texts: string[];
  rewards: number[];
  components: Record<string, number>[];
  /** per response, the log-prob of each token at generation (softmax(logits / temperature)) */
  logprobs: number[][];
  /** seconds the worker spent generating and scoring this group */
  seconds: { generate: number; score: number };
}

/** What the learner publishes for the workers: the config and the data spec. */
export interface RunInfo {
  config: TrainConfig;
  data: string;
  /** the dataset's size the learner saw (the workers check theirs) */
  size: number;
  /** the parquet subset size the learner used */
  subset?: number;
}

/** The id of a (step, prompt, attempt): the same for every delivery of that prompt message. */
export function rolloutId(m: Pick<PromptMsg, 'run' | 'step' | 'prompt' | 'attempt'>): string {
  return `${m.run}.${m.step}.${m.prompt}.${m.attempt}`;
}

export const promptSubject = (d: DistributedConfig) => `${d.promptsStream}.${d.run}`;
export const groupSubject = (d: DistributedConfig, step: number, prompt: number) => `${d.groupsStream}.${d.run}.${step}.${prompt}`;
export const stepGroupsFilter = (d: DistributedConfig, step: number) => `${d.groupsStream}.${d.run}.${step}.*`;
/** the durable pull consumer the workers share */
export const workerConsumer = (d: DistributedConfig) => `workers-${d.run}`;

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  weights: ObjectStore;
  d: DistributedConfig;
  close(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
export const toJson = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
export const fromJson = <T>(b: Uint8Array, what: string): T => {
  try {
    return JSON.parse(dec.decode(b)) as T;
  } catch (e) {
    throw new Error(`dist: ${what}: not JSON (${(e as Error).message})`);
  }
};

const ns = (seconds: number) => Math.round(seconds * 1e9);

/**
 * Connect and make sure the streams, the workers' consumer and the weights bucket exist (creating
 * them is idempotent: the learner and every worker may call it). Reconnects forever by default.
 */
export async function openBus(d: DistributedConfig, opts: { name?: string; timeoutMs?: number } = {}): Promise<Bus> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: d.server.split(',').map(s => s.trim()), name: opts.name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: opts.timeoutMs ?? 5000 });
  } catch (e) {
    throw new Error(`dist: cannot reach the NATS server ${d.server} (config 'distributed.server'): ${(e as Error).message}`);
  }
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const ensure = async (name: string, cfg: Omit<Parameters<JetStreamManager['streams']['add']>[0], 'name'>) => {
    try {
      await jsm.streams.info(name);
    } catch {
      try {
        await jsm.streams.add({ ...cfg, name });
      } catch (e) {
        // created by another process meanwhile
        await jsm.streams.info(name).catch(() => { throw new Error(`dist: cannot create stream ${name}: ${(e as Error).message}`); });
      }
    }
  };
  await ensure(d.promptsStream, { subjects: [`${d.promptsStream}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, duplicate_window: ns(120) });
  await ensure(d.groupsStream, { subjects: [`${d.groupsStream}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File, duplicate_window: ns(120) });
  const consumer = { durable_name: workerConsumer(d), filter_subject: promptSubject(d), ack_policy: AckPolicy.Explicit, ack_wait: ns(d.ackWaitSeconds), max_deliver: -1, deliver_policy: DeliverPolicy.All, max_ack_pending: -1 };
  try {
    await jsm.consumers.info(d.promptsStream, consumer.durable_name);
    await jsm.consumers.update(d.promptsStream, consumer.durable_name, { ack_wait: consumer.ack_wait });
  } catch {
    await jsm.consumers.add(d.promptsStream, consumer).catch(async e => {
      await jsm.consumers.info(d.promptsStream, consumer.durable_name).catch(() => { throw new Error(`dist: cannot create consumer ${consumer.durable_name}: ${(e as Error).message}`); });
    });
  }
  const weights = await new Objm(nc).create(d.weightsBucket, { storage: StorageType.File });
  return { nc, js, jsm, weights, d, close: async () => { await nc.drain().catch(() => nc.close()); } };
}

/** The newest published weights version, or null before the learner published one. */
export async function latestVersion(bus: Bus): Promise<number | null> {
  const b = await bus.weights.getBlob(`${bus.d.run}/latest`);
  return b ? fromJson<{ version: number }>(b, `${bus.d.run}/latest`).version : null;
}

export async function readRunInfo(bus: Bus): Promise<RunInfo | null> {
  const b = await bus.weights.getBlob(`${bus.d.run}/run`);
  return b ? fromJson<RunInfo>(b, `${bus.d.run}/run`) : null;
}

/** Whether an error is the connection's (a restarting server, a timeout) rather than a bug. */
export function isTransient(e: unknown): boolean {
  const m = String((e as Error)?.message ?? e);
  if (/^(learner|worker|dist):/.test(m)) return false;
  return /timeout|timed out|disconnect|closed|connection|reconnect|no responders|503|not found|heartbeat|unavailable/i.test(m);
}

/** Run `fn`, retrying transient failures (the server restarting) for up to `ms`. */
export async function retrying<T>(what: string, fn: () => Promise<T>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!isTransient(e) || Date.now() > deadline) throw new Error(`dist: ${what}: ${(e as Error).message}`);
      await new Promise(r => setTimeout(r, 250));
    }
  }
}
