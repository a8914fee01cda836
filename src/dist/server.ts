/**
 * A local nats-server with JetStream for tests, benchmarks and `npm run learner -- --local`:
 * started on loopback (127.0.0.1) with its store on disk, stopped (SIGTERM, then SIGKILL) within a
 * bound. The binary is the Debian package's (`apt-get install -y nats-server`) or $NATS_SERVER.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface LocalServer {
  url: string;
  port: number;
  storeDir: string;
  /** stop it (SIGTERM; SIGKILL after `graceMs`); the store stays on disk */
  stop(graceMs?: number): Promise<void>;
  /** the process, e.g. for its pid */
  readonly proc: ChildProcess;
}

/** The nats-server binary: $NATS_SERVER or the one on PATH; null when there is none. */
export function natsServerBinary(): string | null {
  const env = process.env.NATS_SERVER;
  if (env) return fs.existsSync(env) ? env : null;
  const r = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : null;
}

/** A TCP port free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function reachable(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const c = net.connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
  });
}

/**
 * Start `nats-server -js -sd <storeDir> -a 127.0.0.1 -p <port>` and wait (at most `timeoutMs`)
 * until it accepts connections. `storeDir` defaults to a new temp folder; `port` to a free one
 * (pass the same ones to restart a server on its store).
 */
export async function startNatsServer(opts: { storeDir?: string; port?: number; timeoutMs?: number } = {}): Promise<LocalServer> {
  const bin = natsServerBinary();
  if (!bin) throw new Error('nats-server: not found on PATH (install it: apt-get install -y nats-server; or set NATS_SERVER)');
  const storeDir = opts.storeDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-nats-'));
  const port = opts.port ?? await freePort();
  const proc = spawn(bin, ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  let exited: number | null | undefined;
  const exit = new Promise<void>(resolve => proc.once('exit', code => { exited = code; resolve(); }));
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  while (!(await reachable(port))) {
    if (exited !== undefined) throw new Error(`nats-server: exited with code ${exited} before listening on 127.0.0.1:${port}: ${stderr.trim().slice(-500)}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`nats-server: not listening on 127.0.0.1:${port} after ${opts.timeoutMs ?? 10_000} ms: ${stderr.trim().slice(-500)}`);
    }
    await new Promise(r => setTimeout(r, 50));
  }
  const stop = async (graceMs = 5000) => {
    if (exited !== undefined) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await exit;
    clearTimeout(t);
  };
  return { url: `nats://127.0.0.1:${port}`, port, storeDir, stop, proc };
}
