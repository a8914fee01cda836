/** npm run doctor: which backend runs, versions, threads, and a measured matmul GFLOP/s. */
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend.ts';
import { matmulGflops } from '../src/util/timing.ts';

function version(pkg: string): string {
  try {
    return JSON.parse(fs.readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return 'not installed';
  }
}

const info = await initBackend({ quiet: true });
console.log(`backend        ${info.name} (${info.provider})`);
console.log(`node           ${process.version} on ${os.platform()} ${os.arch()}`);
for (const p of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'sharp', '@huggingface/tokenizers']) {
  console.log(`${p.padEnd(30)} ${version(p)}`);
}
let threads = 1;
if (info.name === 'wasm') {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  threads = wasm.getThreadsCount();
}
console.log(`cpu cores      ${os.cpus().length}; backend threads ${info.name === 'wasm' ? threads : 'native'}`);
console.log(`bridged        ${info.bridged.length ? info.bridged.join(', ') : '-'}`);
const n = info.name === 'cpu' ? 512 : 1024;
const g = await matmulGflops(n, info.name === 'cpu' ? 2 : 5);
console.log(`matmul ${n}^2    ${g.toFixed(2)} GFLOP/s (float32)`);
console.log(`tensors alive  ${tf.memory().numTensors}`);
