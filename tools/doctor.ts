/**
 * npm run doctor: which backend runs and why, versions, threads, device(s) and a measured matmul GFLOP/s.
 * On the native backend it also measures wasm's matmul in the same run (the ratio shows what native buys),
 * and lists TensorFlow's devices (GPU name and memory on the CUDA build) from a child process.
 */
import * as os from 'node:os';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeThreads } from '../src/backend.ts';
import { matmulGflops } from '../src/util/timing.ts';
import { runCli } from '../src/util/cli.ts';

function version(pkg: string): string {
  try {
    return JSON.parse(fs.readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return 'not installed';
  }
}

/** TensorFlow's "Created device" lines, from a child that loads the same package with logging on. */
export function tfDevices(entry: string): string[] {
  const script = `const tf = require(${JSON.stringify(entry)}); tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dataSync();`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '0' }, encoding: 'utf8', timeout: 120_000 });
  const lines = `${r.stdout}${r.stderr}`.split('\n');
  const devs = lines.filter(l => /Created device|created device/.test(l)).map(l => l.replace(/^.*\] /, '').trim());
  const cudaErr = lines.filter(l => /failed call to cuInit|Cannot dlopen some GPU libraries|CUDA_ERROR/.test(l)).map(l => l.replace(/^.*\] /, '').trim());
  return [...devs, ...cudaErr.slice(0, 2)];
}

const SPEC = {
  name: 'npm run doctor --',
  summary: 'Which backend runs and why, versions, threads, device(s) and a measured matmul GFLOP/s (on the native backend also wasm\'s, in the same run). DPAD_BACKEND chooses the backend.',
  options: {},
} as const;

await runCli(SPEC, async () => {
  const info = await initBackend({ quiet: true });
  console.log(`backend        ${info.name} (${info.provider})`);
  console.log(`why            ${info.reason}`);
  console.log(`node           ${process.version} on ${os.platform()} ${os.arch()}`);
  for (const p of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', 'sharp', '@huggingface/tokenizers']) {
    console.log(`${p.padEnd(30)} ${version(p)}`);
  }
  if (info.native) {
    const m = info.native.manifest;
    console.log(`libtensorflow  ${info.native.tfVersion} (${info.native.variant} build${m?.wheel ? `, wheel ${m.wheel.file} sha256 ${m.wheel.sha256.slice(0, 16)}...` : ''})`);
    console.log(`native package ${info.native.source}`);
    const t = nativeThreads();
    console.log(`threads        intra-op ${t.intra}, inter-op ${t.inter} (${t.source})`);
    const devs = info.native.source.startsWith('/') ? tfDevices(info.native.source) : [];
    console.log(`device(s)      ${devs.length ? devs.join('\n               ') : `CPU:0 (${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores)`}`);
  } else {
    let threads = 1;
    if (info.name === 'wasm') threads = (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount();
    console.log(`threads        ${threads} (${info.name}); cpu cores ${os.cpus().length}`);
    console.log(`bridged        ${info.bridged.length ? info.bridged.join(', ') : '-'}`);
  }
  const n = info.name === 'cpu' ? 512 : 1024;
  const g = await matmulGflops(n, info.name === 'cpu' ? 2 : 5);
  console.log(`matmul ${n}^2    ${g.toFixed(2)} GFLOP/s (float32, ${info.name})`);
  if (info.native?.variant === 'gpu') {
    const big = await matmulGflops(8192, 5);
    console.log(`matmul 8192^2  ${(big / 1000).toFixed(2)} TFLOP/s (float32, GPU)`);
  }
  if (info.name === 'tensorflow') {
    await tf.setBackend('wasm');
    const w = await matmulGflops(1024, 5);
    await tf.setBackend('tensorflow');
    console.log(`matmul 1024^2  ${w.toFixed(2)} GFLOP/s on wasm in the same run: native is ${(g / w).toFixed(1)}x`);
  }
  console.log(`tensors alive  ${tf.memory().numTensors}`);
});
