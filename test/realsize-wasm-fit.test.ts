/**
 * The wasm fit check of pipeline/bundle.ts: a weights directory whose models cannot fit in the
 * 4 GiB wasm heap fails before anything is loaded, with the size it needs, the 4 GiB it has and
 * the command of the native backend; on the native backend, or when it fits, nothing is refused.
 * The large checkpoint is a sparse file: only its safetensors header is ever read.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadWeights, wasmFitError, weightBytes } from '../src/pipeline/bundle.ts';

/** a safetensors file declaring `tensors` (name -> [dtype, shape]) whose data is a hole */
function sparseSafetensors(file: string, tensors: Record<string, [string, number[]]>): void {
  const bytesOf: Record<string, number> = { BF16: 2, F16: 2, F32: 4, I64: 8 };
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, [dtype, shape]] of Object.entries(tensors)) {
    const n = shape.reduce((a, d) => a * d, 1) * bytesOf[dtype];
    header[k] = { dtype, shape, data_offsets: [off, off + n] };
    off += n;
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h]));
  fs.truncateSync(file, 8 + h.length + off);
}

function weightsDir(policyShape: number[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-wasmfit-'));
  for (const sub of ['policy', 'sam2', 'clip']) fs.mkdirSync(path.join(dir, sub));
  fs.writeFileSync(path.join(dir, 'policy', 'config.json'), JSON.stringify({ tie_word_embeddings: true, vocab_size: 151936, hidden_size: 2048 }));
  sparseSafetensors(path.join(dir, 'policy', 'model.safetensors'), { 'model.embed_tokens.weight': ['BF16', [151936, 2048]], 'model.layers.0.mlp.up_proj.weight': ['BF16', policyShape] });
  sparseSafetensors(path.join(dir, 'sam2', 'model.safetensors'), { 'image_encoder.w': ['F32', [1024, 1024]] });
  fs.writeFileSync(path.join(dir, 'clip', 'model.bin'), Buffer.alloc(4096));
  return dir;
}

const GiB = 2 ** 30;

test('a 3B-sized policy on wasm: refused at once with what it needs, the 4 GiB and the native command', async () => {
  const dir = weightsDir([11008, 2048 * 36 * 3]);
  try {
    const policy = weightBytes(path.join(dir, 'policy'));
    assert.is(policy, 4 * 151936 * 2048 * 2 + 4 * 11008 * 2048 * 108); // embedding + its transposed head copy + the rest
    assert.is(weightBytes(path.join(dir, 'sam2')), 4 * 2 ** 20);
    assert.is(weightBytes(path.join(dir, 'clip')), 4096);
    const total = policy + 4 * 2 ** 20 + 4096;
    const g = (n: number) => (n / GiB).toFixed(2);
    const want = `${dir}: the models need ${g(total)} GiB of float32 weights (policy ${g(policy)} GiB, sam2 0.00 GiB, clip 0.00 GiB), more than the 4.00 GiB the wasm backend's heap can hold. Use the native backend: npm run setup:native, then DPAD_BACKEND=tensorflow`;
    assert.is(wasmFitError(dir, undefined, 'wasm'), want);
    assert.is(wasmFitError(dir, undefined, 'tensorflow'), null);
    assert.is(wasmFitError(dir, ['sam2', 'clip'], 'wasm'), null);
    if (tf.findBackendFactory('wasm') && tf.getBackend() !== 'wasm') {
      // loadWeights on the wasm backend throws before reading a tensor (the file's data is a hole)
      const was = tf.getBackend();
      await tf.setBackend('wasm');
      try {
        assert.throws(() => loadWeights(dir), (e: Error) => e.message === want);
      } finally {
        await tf.setBackend(was);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('models that fit (under 4 GiB in all) are not refused on wasm', () => {
  const dir = weightsDir([1024, 1024]);
  try {
    assert.ok(weightBytes(path.join(dir, 'policy')) < 4 * GiB);
    assert.is(wasmFitError(dir, undefined, 'wasm'), null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
