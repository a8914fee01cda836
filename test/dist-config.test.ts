/** The `distributed` section of the training config: defaults, checks with exact messages, resume-neutral. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configDifferences, trainConfig } from '../src/rl/config.ts';

const err = (c: object) => { try { trainConfig(c as never, 'runs/x.json'); } catch (e) { return (e as Error).message; } return 'no error'; };

test('absent or null: one process; {} takes the loopback defaults', () => {
  assert.is(trainConfig({}).distributed, null);
  assert.equal(trainConfig({ distributed: {} }).distributed, {
    server: 'nats://127.0.0.1:4222', run: 'dpad', promptsStream: 'DPAD_PROMPTS', groupsStream: 'DPAD_GROUPS', weightsBucket: 'dpad-weights', maxStaleness: 0, groupSize: null, ackWaitSeconds: 600,
  });
  assert.is(trainConfig({ samplesPerPrompt: 4, distributed: { groupSize: 4, maxStaleness: 2 } }).distributed?.maxStaleness, 2);
});

test('bad values are refused naming the field', () => {
  assert.is(err({ distributed: { maxStaleness: -1 } }), "runs/x.json: 'distributed.maxStaleness' must be an integer >= 0 (got -1)");
  assert.is(err({ distributed: { groupSize: 3 } }), "runs/x.json: 'distributed.groupSize' (3) must equal 'samplesPerPrompt' (8): a group is the G responses of one prompt (or leave it null)");
  assert.is(err({ distributed: { server: 'http://x:4222' } }), "runs/x.json: 'distributed.server' must be nats://host:port (comma-separated for a cluster), got \"http://x:4222\"");
  assert.is(err({ distributed: { run: 'a.b' } }), "runs/x.json: 'distributed.run' may hold letters, digits, '_' and '-' only (a JetStream name and subject token), got \"a.b\"");
  assert.is(err({ distributed: { sever: 'nats://a:1' } }), "runs/x.json: unknown key 'distributed.sever' (did you mean 'distributed.server'?)");
  assert.is(err({ distributed: { ackWaitSeconds: 0 } }), "runs/x.json: 'distributed.ackWaitSeconds' must be a number > 0 (got 0)");
});

test('resume-neutral: a single-process checkpoint may be continued by a learner, and the server may move', () => {
  const one = JSON.parse(JSON.stringify(trainConfig({})));
  assert.equal(configDifferences(one, trainConfig({ distributed: {} })), []);
  assert.equal(configDifferences(JSON.parse(JSON.stringify(trainConfig({ distributed: {} }))), trainConfig({ distributed: { server: 'nats://10.0.0.5:4222' } })), []);
  assert.equal(configDifferences(one, trainConfig({ lr: 1 })).map(d => d.field), ['lr']);
});

test.run();
