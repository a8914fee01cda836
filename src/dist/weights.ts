/**
 * Versioned weights as one blob for the object store: every parameter (model.safetensors, full
 * fine-tuning) or the LoRA adapter in PEFT's format (adapter_config.json + adapter_model.safetensors).
 * The bytes are the checkpoint's (float32, exact): a worker that loads version v holds exactly the
 * learner's parameters after v updates.
 *
 * Blob layout: 'DPADW1\n', a JSON line {files: [{name, size}]}, then the files' bytes in order.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import type { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';
import { loadPeftAdapter, savePeftAdapter } from '../models/qwen2_5_vl/peft.ts';

const MAGIC = 'DPADW1\n';

function pack(dir: string): Uint8Array {
  const names = fs.readdirSync(dir).sort();
  const files = names.map(n => fs.readFileSync(path.join(dir, n)));
  const head = Buffer.from(`${MAGIC}${JSON.stringify({ files: names.map((name, i) => ({ name, size: files[i].length })) })}\n`);
  return new Uint8Array(Buffer.concat([head, ...files]));
}

function unpack(blob: Uint8Array, dir: string, what: string): string[] {
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (buf.subarray(0, MAGIC.length).toString() !== MAGIC) throw new Error(`dist: ${what}: not a weights blob (no ${JSON.stringify(MAGIC.trim())} header)`);
  const nl = buf.indexOf(10, MAGIC.length);
  const { files } = JSON.parse(buf.subarray(MAGIC.length, nl).toString()) as { files: { name: string; size: number }[] };
  let off = nl + 1;
  for (const f of files) {
    if (f.name.includes('/') || f.name.startsWith('.')) throw new Error(`dist: ${what}: bad file name ${JSON.stringify(f.name)}`);
    if (off + f.size > buf.length) throw new Error(`dist: ${what}: truncated (${f.name} needs ${f.size} bytes at ${off}, the blob has ${buf.length})`);
    fs.writeFileSync(path.join(dir, f.name), buf.subarray(off, off + f.size));
    off += f.size;
  }
  return files.map(f => f.name);
}

function withTemp<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-w-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The model's weights as a blob: the LoRA adapter when `adapter`, else every parameter. */
export function weightsBlob(model: Qwen2_5_VL, adapter: boolean): Uint8Array {
  return withTemp(dir => {
    if (adapter) savePeftAdapter(model, dir);
    else {
      const params = model.exportTensors();
      try {
        writeSafetensors(path.join(dir, 'model.safetensors'), params);
      } finally {
        tf.dispose([...params.values()]);
      }
    }
    return pack(dir);
  });
}

/** Load a blob from weightsBlob onto the model (an adapter blob needs the same base and adapters). */
export function loadWeightsBlob(model: Qwen2_5_VL, blob: Uint8Array, what: string): void {
  withTemp(dir => {
    const names = unpack(blob, dir, what);
    if (names.includes('model.safetensors')) {
      const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
      try {
        model.load(f, { where: what });
      } finally {
        f.close();
      }
    } else if (names.includes('adapter_model.safetensors')) loadPeftAdapter(model, dir);
    else throw new Error(`dist: ${what}: holds neither model.safetensors nor a PEFT adapter (files: ${names.join(', ')})`);
  });
}
