/** Open any supported checkpoint by path: a .safetensors file, a shard index, a directory, or a torch .pt/.bin. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError } from './errors.ts';
import { SafetensorsFile, ShardedSafetensors } from './safetensors.ts';
import type { TensorSource } from './source.ts';
import { TorchCheckpoint } from './torch.ts';

export function openCheckpoint(p: string, opts: { root?: string } = {}): TensorSource {
  if (!fs.existsSync(p)) throw new FormatError(p, 'no such file or directory');
  if (fs.statSync(p).isDirectory()) {
    const candidates = ['model.safetensors.index.json', 'model.safetensors', 'pytorch_model.bin.index.json', 'pytorch_model.bin', 'weights.safetensors'];
    for (const c of candidates) {
      const f = path.join(p, c);
      if (fs.existsSync(f)) {
        if (c === 'pytorch_model.bin.index.json') throw new FormatError(f, 'sharded pytorch_model.bin checkpoints are not supported: convert the shards one by one, or use the safetensors release');
        return openCheckpoint(f, opts);
      }
    }
    throw new FormatError(p, `no checkpoint found (looked for ${candidates.join(', ')})`);
  }
  if (p.endsWith('.index.json')) return new ShardedSafetensors(p);
  const head = Buffer.alloc(4);
  const fd = fs.openSync(p, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (head.readUInt32LE(0) === 0x04034b50) return TorchCheckpoint.open(p, opts);
  return SafetensorsFile.open(p);
}

/**
 * Build a model and fill it from a checkpoint path; the model is disposed if loading fails and
 * the file is always closed.
 */
export function loadModel<M extends { dispose(): void }>(p: string, make: () => M, fill: (model: M, src: TensorSource) => unknown): M {
  const src = openCheckpoint(p);
  const model = make();
  try {
    fill(model, src);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    src.close();
  }
}
