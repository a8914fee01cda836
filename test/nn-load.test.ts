/**
 * Streaming loads (issue 21, memory at real size): shapes are checked from the source's metadata
 * before anything is read, then tensors are read and assigned one at a time, so a load holds the
 * model plus one tensor (a 3B policy: peak RSS 18.2 GiB, where it used to pass 19.8 GiB and climb).
 */
import './helpers/setup.ts';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RawTensor } from '../src/io/dtypes.ts';
import type { TensorSource } from '../src/io/source.ts';
import { LoadError, Module } from '../src/nn/module.ts';
import { Linear } from '../src/nn/layers.ts';

class Stack extends Module {
  readonly layers: Linear[];
  constructor(n: number) {
    super(null, '');
    this.layers = Array.from({ length: n }, (_, i) => new Linear(this, `l.${i}`, 4, 4, { bias: true }));
  }
}

/** A source that records how many tensors are alive whenever one is read, and what was read. */
function recordingSource(shapes: Map<string, number[]>): TensorSource & { alive: number[]; reads: string[] } {
  const alive: number[] = [];
  const reads: string[] = [];
  return {
    path: 'mem.safetensors', alive, reads,
    keys: () => [...shapes.keys()],
    has: k => shapes.has(k),
    meta: k => ({ dtype: 'F32', shape: shapes.get(k)! }),
    read: (k): RawTensor => {
      alive.push(tf.memory().numTensors);
      reads.push(k);
      const shape = shapes.get(k)!;
      return { dtype: 'F32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i) };
    },
    close: () => {},
  };
}

test('tensors are read and assigned one at a time: the live tensor count never grows during a load', () => {
  const m = new Stack(6);
  const shapes = new Map<string, number[]>();
  for (let i = 0; i < 6; i++) shapes.set(`l.${i}.weight`, [4, 4]).set(`l.${i}.bias`, [4]);
  const src = recordingSource(shapes);
  const before = tf.memory().numTensors;
  m.load(src);
  assert.is(src.reads.length, 12);
  assert.ok(src.alive.every(n => n === before), `tensors alive at each read: ${src.alive}`);
  assert.is(tf.memory().numTensors, before);
  assert.equal(Array.from(m.layers[5].bias!.dataSync()), [0, 1, 2, 3]);
  m.dispose();
});

test('a shape mismatch is found from the metadata before any tensor is read', () => {
  const m = new Stack(2);
  const shapes = new Map<string, number[]>([['l.0.weight', [4, 4]], ['l.0.bias', [4]], ['l.1.weight', [4, 3]], ['l.1.bias', [4]]]);
  const src = recordingSource(shapes);
  try {
    m.load(src);
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, LoadError);
    assert.match((e as Error).message, 'mem.safetensors: weights do not fit the model: shape mismatch 1 (l.1.weight: expected [4,4], got [4,3])');
  }
  assert.is(src.reads.length, 0, 'nothing was read');
  m.dispose();
});

test.run();
