/**
 * npm run setup:native [-- --wheel FILE | --libtensorflow DIR | --gpu] [--force]
 *
 * Builds the native TensorFlow backend: the binding of @tensorflow/tfjs-node(-gpu) 4.22.0, compiled
 * with node-gyp against the libtensorflow inside the official TensorFlow 2.21 wheel, into .native/
 * (layout in src/backend/native.ts). Python is used only as pip, the wheel's download client.
 * A re-run reuses the wheel, the packed package, the JS deps and the binding (nothing is rebuilt
 * while the manifest matches); --force rebuilds the binding.
 */
import { didYouMean } from '../src/util/cli.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PACKAGE_OF, manifestPath, nativeDir, packageDir, projectRoot, readManifest, type NativeManifest, type NativeVariant } from '../src/backend/native.ts';
import { extractZip, listZip, readZipEntry } from '../src/backend/zip.ts';

const TF_VERSION = '2.21.0';
const TFJS_NODE_VERSION = '4.22.0';
const USAGE = `usage: npm run setup:native [-- options]

Builds @tensorflow/tfjs-node ${TFJS_NODE_VERSION}'s binding against libtensorflow ${TF_VERSION} into .native/
(git-ignored; survives npm ci; DPAD_BACKEND=tensorflow or auto then uses it).

  (no option)          pip download tensorflow-cpu==${TF_VERSION} --no-deps (pip's configured index)
  --wheel FILE         use this TensorFlow wheel (offline); a tensorflow-cpu or tensorflow wheel, linux x86_64
  --libtensorflow DIR  use an unpacked libtensorflow: DIR/{libtensorflow_cc.so.2 | lib/libtensorflow.so.2},
                       libtensorflow_framework.so.2 beside it, and DIR/include
  --gpu                the CUDA build: tensorflow==${TF_VERSION} plus the CUDA 12 nvidia-* wheels of its
                       and-cuda extra, package @tensorflow/tfjs-node-gpu (with --wheel: the tensorflow wheel;
                       the nvidia wheels are then looked for beside it, else downloaded)
  --force              rebuild the binding even when the manifest says it is up to date
  --help               this text

Needs: linux x86_64, g++ and make, python3 (node-gyp's gyp; pip for the download), npm (npm pack).`;

class SetupError extends Error {}
/** Every failure names its cause: no pip, no compiler, wrong wheel, wrong platform, ... */
function fail(cause: string, detail: string): never {
  throw new SetupError(`setup:native: ${cause}: ${detail}`);
}
const say = (s: string) => process.stdout.write(`[setup:native] ${s}\n`);

interface Options { wheel: string | null; libtensorflow: string | null; gpu: boolean; force: boolean }

export function parseArgs(argv: string[]): Options | 'help' {
  const o: Options = { wheel: null, libtensorflow: null, gpu: false, force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue;
    if (a === '--help' || a === '-h') return 'help';
    else if (a === '--gpu') o.gpu = true;
    else if (a === '--force') o.force = true;
    else if (a === '--wheel' || a === '--libtensorflow') {
      const v = argv[++i];
      if (!v || v.startsWith('--')) fail('bad arguments', `${a} needs a path`);
      if (a === '--wheel') o.wheel = path.resolve(v); else o.libtensorflow = path.resolve(v);
    } else {
      const near = a.startsWith('--') ? didYouMean(a.slice(2), ['wheel', 'libtensorflow', 'gpu', 'force', 'help']) : null;
      fail('bad arguments', `unknown option ${a}${near ? ` (did you mean --${near}?)` : ''} (see --help)`);
    }
  }
  if (o.wheel && o.libtensorflow) fail('bad arguments', '--wheel and --libtensorflow exclude each other');
  return o;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; quiet?: boolean } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { ok: r.status === 0 && !r.error, missing: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT', out, tail: out.trim().split('\n').slice(-15).join('\n') };
}

function checkPlatform(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    fail('wrong platform', `${process.platform}/${process.arch}: the TensorFlow ${TF_VERSION} wheels and tfjs-node's linux build rules used here are for linux x86_64`);
  }
  const napi = Number(process.versions.napi);
  if (!(napi >= 8)) fail('wrong platform', `Node ${process.version} offers N-API ${process.versions.napi}; the binding needs N-API 8 (Node >= 16)`);
}

function checkCompiler(): string {
  const cxx = process.env.CXX || 'g++';
  const c = run(cxx, ['--version']);
  if (!c.ok) fail('no compiler', `${cxx} --version failed (${c.missing ? 'not found' : c.tail}); install g++ (Debian: apt-get install g++ make)`);
  if (!run('make', ['--version']).ok) fail('no compiler', 'make not found; install make (Debian: apt-get install make)');
  if (!run('python3', ['--version']).ok) fail('no compiler', 'python3 not found: node-gyp runs gyp on it (build time only)');
  return c.out.split('\n')[0].trim();
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** name-version-py-abi-platform.whl, per the wheel spec */
export function parseWheelName(file: string): { dist: string; version: string; platform: string } {
  const m = /^([A-Za-z0-9_.]+)-([^-]+)-(?:[^-]+-)?[^-]+-[^-]+-([^-]+)\.whl$/.exec(path.basename(file));
  if (!m) fail('wrong wheel', `${file}: not a wheel file name (name-version-python-abi-platform.whl)`);
  return { dist: m[1].toLowerCase().replace(/[-.]/g, '_'), version: m[2], platform: m[3] };
}

export function checkWheelName(file: string, variant: NativeVariant): void {
  const w = parseWheelName(file);
  const want = variant === 'gpu' ? ['tensorflow'] : ['tensorflow_cpu', 'tensorflow'];
  if (!want.includes(w.dist)) fail('wrong wheel', `${path.basename(file)} is ${w.dist}, expected ${want.join(' or ')}${variant === 'gpu' ? ' (tensorflow-cpu has no CUDA)' : ''}`);
  if (!/linux.*x86_64/.test(w.platform)) fail('wrong wheel', `${path.basename(file)} is for ${w.platform}, this needs a linux x86_64 wheel`);
  if (w.version !== TF_VERSION) say(`warning: ${path.basename(file)} is TensorFlow ${w.version}; the binding was verified against ${TF_VERSION}`);
}

function pip(args: string[]): void {
  const v = run('python3', ['-m', 'pip', '--version']);
  if (!v.ok) fail('no pip', `python3 -m pip --version failed (${v.missing ? 'python3 not found' : v.tail}); install pip, or pass --wheel FILE`);
  say(`python3 -m pip ${args.join(' ')}`);
  const r = run('python3', ['-m', 'pip', ...args]);
  if (!r.ok) fail('pip download failed', `python3 -m pip ${args.join(' ')}:\n${r.tail}\n(offline? pass --wheel FILE)`);
}

function findWheel(dir: string, dist: string): string | null {
  if (!fs.existsSync(dir)) return null;
  const f = fs.readdirSync(dir).find(n => n.endsWith('.whl') && n.toLowerCase().startsWith(`${dist}-${TF_VERSION}-`));
  return f ? path.join(dir, f) : null;
}

/** The Requires-Dist lines of the wheel's METADATA that carry `extra == "and-cuda"`. */
export function cudaRequirements(metadata: string): string[] {
  return metadata.split('\n').map(l => /^Requires-Dist:\s*([^;]+);\s*extra\s*==\s*"and-cuda"/.exec(l.trim())?.[1].trim().replace(/\s+/g, '')).filter((x): x is string => !!x);
}

function obtainWheels(o: Options, variant: NativeVariant, wheelDir: string): { main: string; extra: string[] } {
  const dist = variant === 'gpu' ? 'tensorflow' : 'tensorflow_cpu';
  let main = o.wheel;
  if (main && !fs.existsSync(main)) fail('wrong wheel', `${main}: no such file`);
  if (!main) {
    main = findWheel(wheelDir, dist);
    if (main) say(`reusing ${path.relative(projectRoot(), main)}`);
    else {
      fs.mkdirSync(wheelDir, { recursive: true });
      pip(['download', `${dist.replace('_', '-')}==${TF_VERSION}`, '--no-deps', '-d', wheelDir]);
      main = findWheel(wheelDir, dist);
      if (!main) fail('wrong wheel', `pip downloaded no ${dist}-${TF_VERSION} wheel into ${wheelDir} (${fs.readdirSync(wheelDir).join(', ')}): wrong platform or Python for the index?`);
    }
  }
  checkWheelName(main, variant);
  if (variant === 'cpu') return { main, extra: [] };
  const meta = listZip(main).find(e => /^[^/]+\.dist-info\/METADATA$/.test(e.name));
  if (!meta) fail('wrong wheel', `${main} has no *.dist-info/METADATA`);
  const reqs = cudaRequirements(readZipEntry(main, meta).toString('utf8'));
  if (!reqs.length) fail('wrong wheel', `${path.basename(main)} names no and-cuda requirements: not a CUDA build of TensorFlow`);
  const dirs = [...new Set([path.dirname(main), wheelDir])];
  const have = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter(n => n.startsWith('nvidia_') && n.endsWith('.whl')).map(n => path.join(dir, n)) : []);
  const stem = (r: string) => r.split(/[<>=!~]/)[0].toLowerCase().replace(/-/g, '_');
  const found = () => reqs.map(r => dirs.flatMap(have).find(f => path.basename(f).toLowerCase().startsWith(`${stem(r)}-`)) ?? null);
  if (found().some(f => !f)) {
    fs.mkdirSync(wheelDir, { recursive: true });
    pip(['download', '--no-deps', '--only-binary=:all:', '-d', wheelDir, ...reqs]);
  }
  const extra = found();
  const missing = reqs.filter((_, i) => !extra[i]);
  if (missing.length) fail('wrong wheel', `no wheel for ${missing.join(', ')} in ${dirs.join(' or ')}`);
  return { main, extra: extra as string[] };
}

function libFrom(dir: string): { cc: string; fw: string; include: string } {
  const cands = [[path.join(dir, 'libtensorflow_cc.so.2'), path.join(dir, 'libtensorflow_framework.so.2'), path.join(dir, 'include')],
    [path.join(dir, 'lib', 'libtensorflow.so.2'), path.join(dir, 'lib', 'libtensorflow_framework.so.2'), path.join(dir, 'include')],
    [path.join(dir, 'lib', 'libtensorflow_cc.so.2'), path.join(dir, 'lib', 'libtensorflow_framework.so.2'), path.join(dir, 'include')]];
  for (const [cc, fw, include] of cands) {
    if (fs.existsSync(cc) && fs.existsSync(fw) && fs.existsSync(path.join(include, 'tensorflow', 'c', 'eager', 'c_api.h'))) return { cc, fw, include };
  }
  fail('wrong libtensorflow', `${dir}: expected libtensorflow_cc.so.2 (or lib/libtensorflow.so.2), libtensorflow_framework.so.2 and include/tensorflow/c/eager/c_api.h`);
}

/** Put libtensorflow (and, for the GPU build, the CUDA wheels' libraries) into <pkg>/deps. */
async function layOutDeps(pkg: string, o: Options, wheels: { main: string; extra: string[] } | null): Promise<void> {
  const deps = path.join(pkg, 'deps');
  fs.rmSync(deps, { recursive: true, force: true });
  fs.mkdirSync(path.join(deps, 'lib'), { recursive: true });
  const lib = path.join(deps, 'lib');
  if (o.libtensorflow) {
    const l = libFrom(o.libtensorflow);
    fs.symlinkSync(l.cc, path.join(lib, 'libtensorflow_cc.so.2'));
    fs.symlinkSync(l.fw, path.join(lib, 'libtensorflow_framework.so.2'));
    fs.symlinkSync(l.include, path.join(deps, 'include'));
  } else if (wheels) {
    const entries = listZip(wheels.main);
    for (const n of ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2', 'tensorflow/include/tensorflow/c/eager/c_api.h']) {
      if (!entries.some(e => e.name === n)) fail('wrong wheel', `${path.basename(wheels.main)} has no ${n}: not a TensorFlow >= 2.16 wheel with the C API`);
    }
    say(`extracting libtensorflow and headers from ${path.basename(wheels.main)}`);
    await extractZip(wheels.main, entries, name => {
      if (name === 'tensorflow/libtensorflow_cc.so.2' || name === 'tensorflow/libtensorflow_framework.so.2') return path.join(lib, path.basename(name));
      if (name.startsWith('tensorflow/include/') && !name.endsWith('/')) return path.join(deps, 'include', name.slice('tensorflow/include/'.length));
      return null;
    });
    for (const w of wheels.extra) {
      say(`extracting CUDA libraries from ${path.basename(w)}`);
      // TF's GPU libraries look for them at $ORIGIN/../nvidia/<name>/lib (cuda_rpath_flags): deps/nvidia
      await extractZip(w, listZip(w), name => (name.startsWith('nvidia/') && !name.endsWith('/') && !name.includes('/include/') ? path.join(deps, name) : null));
    }
  }
  fs.symlinkSync('libtensorflow_cc.so.2', path.join(lib, 'libtensorflow.so.2'));
  fs.symlinkSync('libtensorflow_cc.so.2', path.join(lib, 'libtensorflow.so'));
  fs.symlinkSync('libtensorflow_framework.so.2', path.join(lib, 'libtensorflow_framework.so'));
}

function nvidiaLibDirs(pkg: string): string[] {
  const nv = path.join(pkg, 'deps', 'nvidia');
  if (!fs.existsSync(nv)) return [];
  return fs.readdirSync(nv).map(d => path.join(nv, d, 'lib')).filter(d => fs.existsSync(d));
}

/** npm pack the package once (kept in .native/pack), unpack it into `pkg`, install its JS deps into .native/node_modules. */
function unpackPackage(root: string, name: string, pkg: string): void {
  const packDir = path.join(root, 'pack');
  const tgz = path.join(packDir, `${name.replace('@', '').replace('/', '-')}-${TFJS_NODE_VERSION}.tgz`);
  if (!fs.existsSync(tgz)) {
    fs.mkdirSync(packDir, { recursive: true });
    say(`npm pack ${name}@${TFJS_NODE_VERSION}`);
    const r = run('npm', ['pack', `${name}@${TFJS_NODE_VERSION}`, '--pack-destination', packDir, '--silent']);
    if (!r.ok || !fs.existsSync(tgz)) fail('npm pack failed', `npm pack ${name}@${TFJS_NODE_VERSION}:\n${r.tail}`);
  }
  fs.rmSync(pkg, { recursive: true, force: true });
  fs.mkdirSync(pkg, { recursive: true });
  const t = run('tar', ['-xzf', tgz, '-C', pkg, '--strip-components=1']);
  if (!t.ok) fail('npm pack failed', `tar -xzf ${tgz}: ${t.tail}`);
  const pj = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  // @tensorflow/tfjs is the project's own copy (resolved from the project's node_modules): one tfjs-core
  const wanted = Object.fromEntries(Object.entries(pj.dependencies).filter(([d]) => !d.startsWith('@tensorflow/')));
  const have = (d: string) => fs.existsSync(path.join(root, 'node_modules', d, 'package.json'));
  if (Object.keys(wanted).every(have)) return;
  fs.writeFileSync(path.join(root, 'package.json'), `${JSON.stringify({ name: 'dpad-native-deps', private: true, description: 'JS dependencies of the tfjs-node binding (npm run setup:native)', dependencies: wanted }, null, 2)}\n`);
  say(`npm install (the binding's JS deps: ${Object.keys(wanted).join(', ')})`);
  const r = run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--omit=dev', '--silent'], { cwd: root });
  if (!r.ok) fail('npm install failed', `npm install in ${root}:\n${r.tail}`);
}

function nodeGyp(): { cmd: string; args: string[] } {
  const cands = [process.env.npm_config_node_gyp, path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  const found = cands.find(c => c && fs.existsSync(c));
  return found ? { cmd: process.execPath, args: [found] } : { cmd: 'npx', args: ['--yes', 'node-gyp@11'] };
}

function build(pkg: string, napi: number): void {
  const gyp = nodeGyp();
  // Node's headers: the installed ones when present (offline), else node-gyp fetches them
  const nodedir = path.resolve(path.dirname(process.execPath), '..');
  const haveHeaders = fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'));
  const args = [...gyp.args, 'rebuild', ...(haveHeaders ? [`--nodedir=${nodedir}`] : []), '--module_name=tfjs_binding', `--module_path=./lib/napi-v${napi}`, `--napi_build_version=${napi}`, '-j', '2'];
  say(`node-gyp ${args.slice(gyp.args.length).join(' ')} (in ${path.relative(projectRoot(), pkg)}; a few minutes)`);
  const r = run(gyp.cmd, args, { cwd: pkg });
  if (!r.ok) {
    const cause = /g\+\+: (command )?not found|No such file or directory.*g\+\+|cc1plus/.test(r.out) ? 'no compiler' : /gyp.*(python|Python)/.test(r.out) && /not found|Could not find/.test(r.out) ? 'no compiler' : 'build failed';
    fail(cause, `node-gyp rebuild:\n${r.tail}`);
  }
  const out = path.join(pkg, 'lib', `napi-v${napi}`, 'tfjs_binding.node');
  if (!fs.existsSync(out)) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.copyFileSync(path.join(pkg, 'build', 'Release', 'tfjs_binding.node'), out);
  }
  fs.rmSync(path.join(pkg, 'build', 'Release', 'obj.target'), { recursive: true, force: true });
}

/** Load the built package in a child Node, run a matmul, return TF_Version(). */
function verify(pkg: string, binding: string, libraryPath: string[]): string {
  const script = `const tf = require(${JSON.stringify(path.join(pkg, 'dist', 'index.js'))});
const b = require(${JSON.stringify(path.join(pkg, binding))});
const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0];
if (tf.getBackend() !== 'tensorflow' || y !== 11) throw new Error('backend ' + tf.getBackend() + ', matmul ' + y);
console.log('TF_VERSION=' + b.TF_Version);`;
  const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', LD_LIBRARY_PATH: [...libraryPath, process.env.LD_LIBRARY_PATH ?? ''].filter(Boolean).join(':') };
  const r = run(process.execPath, ['-e', script], { cwd: projectRoot(), env });
  const v = /TF_VERSION=(\S+)/.exec(r.out)?.[1];
  if (!r.ok || !v) {
    const cause = /GLIBC_|GLIBCXX_|CXXABI_/.test(r.out) ? 'wrong platform' : /Cannot find module '@tensorflow\/tfjs'/.test(r.out) ? 'no @tensorflow/tfjs (run npm ci first)' : 'load failed';
    fail(cause, `loading ${path.relative(projectRoot(), pkg)}:\n${r.tail}`);
  }
  return v;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o === 'help') { console.log(USAGE); return; }
  const t0 = performance.now();
  checkPlatform();
  const variant: NativeVariant = o.gpu ? 'gpu' : 'cpu';
  const root = nativeDir();
  const name = PACKAGE_OF[variant];
  const pkg = packageDir(variant, root);
  const napi = 8;
  const wheelDir = path.join(root, 'wheel');
  const wheels = o.libtensorflow ? null : obtainWheels(o, variant, wheelDir);
  const wheel = wheels ? { file: path.basename(wheels.main), sha256: await sha256(wheels.main) } : null;
  const extraWheels = wheels ? await Promise.all(wheels.extra.map(async f => ({ file: path.basename(f), sha256: await sha256(f) }))) : [];
  const binding = path.join('lib', `napi-v${napi}`, 'tfjs_binding.node');
  const old = readManifest(variant, root);
  const same = old && !o.force && old.packageVersion === TFJS_NODE_VERSION && old.napiVersion === napi
    && JSON.stringify(old.wheel) === JSON.stringify(wheel) && JSON.stringify(old.extraWheels) === JSON.stringify(extraWheels)
    && old.libtensorflowDir === (o.libtensorflow ?? null) && fs.existsSync(path.join(pkg, binding));
  if (same) {
    if (!fs.existsSync(path.join(root, 'node_modules', '@mapbox', 'node-pre-gyp'))) unpackDepsOnly(root, name, pkg);
    const v = verify(pkg, binding, old.libraryPath);
    say(`up to date: ${name} ${TFJS_NODE_VERSION} on TensorFlow ${v} (${variant}) in ${path.relative(projectRoot(), pkg)}; --force rebuilds`);
    return;
  }
  const compiler = checkCompiler();
  unpackPackage(root, name, pkg);
  await layOutDeps(pkg, o, wheels);
  build(pkg, napi);
  const libraryPath = nvidiaLibDirs(pkg);
  const tfVersion = verify(pkg, binding, libraryPath);
  if (variant === 'gpu') {
    fs.writeFileSync(path.join(root, 'gpu', 'env.sh'), `# source this before running on the GPU build (TF also finds these through its rpath)\nexport LD_LIBRARY_PATH=${libraryPath.join(':')}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n`);
  }
  const manifest: NativeManifest = {
    variant, package: name, packageVersion: TFJS_NODE_VERSION, tfVersion, wheel, libtensorflowDir: o.libtensorflow, extraWheels,
    binding, libraryPath, node: process.version, napiVersion: napi, compiler, builtAt: new Date().toISOString(),
    buildSeconds: Math.round((performance.now() - t0) / 1000),
  };
  fs.writeFileSync(manifestPath(variant, root), `${JSON.stringify(manifest, null, 2)}\n`);
  say(`built ${name} ${TFJS_NODE_VERSION} on TensorFlow ${tfVersion} (${variant}) in ${manifest.buildSeconds} s: ${path.relative(projectRoot(), manifestPath(variant, root))}`);
  say(`use it: DPAD_BACKEND=tensorflow npm test   (npm run doctor shows it; cores here: ${os.availableParallelism()})`);
}

/** Re-create .native/node_modules after it was removed, keeping the built package. */
function unpackDepsOnly(root: string, name: string, pkg: string): void {
  const tmp = `${pkg}.deps-tmp`;
  unpackPackage(root, name, tmp);
  fs.rmSync(tmp, { recursive: true, force: true });
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main().catch(e => {
    process.stderr.write(`${e instanceof SetupError ? e.message : (e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
