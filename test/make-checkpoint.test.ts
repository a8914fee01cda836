/**
 * Stand-in checkpoints (tools/make-checkpoint.ts, src/realsize, src/io/torch_write.ts): tiny configs
 * go through the same writers as the real sizes; their key sets, shapes and order equal the
 * official tiny checkpoints the fixtures hold, the converters read them, and the real sizes plan
 * the hub's parameter counts and shards.
 */
import { FIXTURES } from './helpers/setup.ts';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { numel } from '../src/io/dtypes.ts';
import { SafetensorsFile, ShardedSafetensors } from '../src/io/safetensors.ts';
import { TorchCheckpoint } from '../src/io/torch.ts';
import { pickleStateDict, writeTorchCheckpoint } from '../src/io/torch_write.ts';
import { ZipReader } from '../src/io/zip.ts';
import { ClipTokenizer } from '../src/models/clip/tokenizer.ts';
import { convertClip } from '../src/models/clip/convert.ts';
import { convertQwen, qwenParamShapes } from '../src/models/qwen2_5_vl/convert.ts';
import { qwenConfigFrom } from '../src/models/qwen2_5_vl/config.ts';
import { qwenKeyMap, loadQwen } from '../src/models/qwen2_5_vl/weights.ts';
import { sam2ConfigFromHydra } from '../src/models/sam2/config.ts';
import { convertSam2 } from '../src/models/sam2/convert.ts';
import { loadSam2 } from '../src/models/sam2/weights.ts';
import { clipTensors, writeClipCheckpoint } from '../src/realsize/clip.ts';
import { parseSize, planShards, totalBytes } from '../src/realsize/layout.ts';
import { QWEN2_5_VL_3B_HUB_CONFIG, QWEN2_5_VL_7B_HUB_CONFIG, qwenTensors, writeQwenCheckpoint } from '../src/realsize/qwen.ts';
import { normal, tensorBytes } from '../src/realsize/random.ts';
import { sam2LargeTensors, sam2Tensors, sam2VideoFromHydra, writeSam2Checkpoint } from '../src/realsize/sam2.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-mkckpt-'));
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const keysShapes = (src: { keys(): string[]; meta(k: string): { shape: number[] } }) => src.keys().map(k => `${k} [${src.meta(k).shape}]`);

test('values: seeded per key, order-free, the asked scale, never NaN/Inf/subnormal; BF16 is the F32 value rounded', () => {
  const a = tensorBytes('w', 'F32', [4096], normal(0.02), 7);
  assert.equal(tensorBytes('w', 'F32', [4096], normal(0.02), 7), a);
  assert.not.equal(tensorBytes('w', 'F32', [4096], normal(0.02), 8), a);
  assert.not.equal(tensorBytes('v', 'F32', [4096], normal(0.02), 7), a);
  const f = new Float32Array(a.buffer);
  const mean = f.reduce((s, x) => s + x, 0) / f.length;
  const sd = Math.sqrt(f.reduce((s, x) => s + (x - mean) ** 2, 0) / f.length);
  assert.ok(Math.abs(mean) < 0.002 && Math.abs(sd - 0.02) < 0.002, `mean ${mean} sd ${sd}`);
  assert.ok(f.every(x => Number.isFinite(x) && (x === 0 || Math.abs(x) > 1e-5)));
  const bf = new Uint16Array(tensorBytes('w', 'BF16', [4096], normal(0.02), 7).buffer);
  const bits = new Uint32Array(a.buffer);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(bf[i] - (bits[i] >>> 16)) <= 1);
  const ids = tensorBytes('position_ids', 'I64', [1, 5], { kind: 'arange' }, 0);
  assert.equal([...new BigInt64Array(ids.buffer)].map(Number), [0, 1, 2, 3, 4]);
});

test('Qwen: the official 3B/7B configs plan the hub parameter counts, key sets and shards', () => {
  const p3 = qwenTensors(QWEN2_5_VL_3B_HUB_CONFIG);
  const p7 = qwenTensors(QWEN2_5_VL_7B_HUB_CONFIG);
  assert.is(p3.reduce((s, p) => s + numel(p.shape), 0), 3754622976);
  assert.is(p7.reduce((s, p) => s + numel(p.shape), 0), 8292166656);
  assert.ok(p3.every(p => p.dtype === 'BF16'));
  assert.not.ok(p3.some(p => p.key === 'lm_head.weight'));
  const s3 = planShards(p3, parseSize('4GB'));
  const s7 = planShards(p7, parseSize('4GB'));
  assert.is(s3.length, 2);
  assert.is(s7.length, 5);
  assert.equal(s7[4].map(p => p.key), ['lm_head.weight']);
  for (const s of [...s3, ...s7]) assert.ok(totalBytes(s) <= 4e9);
  // the converter's expectations, through its own key map, for both layouts
  for (const [raw, plans] of [[QWEN2_5_VL_3B_HUB_CONFIG, p3], [QWEN2_5_VL_7B_HUB_CONFIG, qwenTensors(QWEN2_5_VL_7B_HUB_CONFIG, 'v4.52')]] as const) {
    const c = qwenConfigFrom(raw);
    const map = qwenKeyMap(c.tie_word_embeddings);
    const want = [...qwenParamShapes(c)].map(([k, s]) => `${k} [${s}]`).sort();
    assert.equal(plans.map(p => `${map(p.key)} [${p.shape}]`).sort(), want);
  }
  assert.throws(() => parseSize('4 parsecs'), /^size "4 parsecs": expected a number of bytes or e\.g\. 4GB, 500MB, 2GiB$/);
});

test('Qwen tiny: both layouts match the official tiny checkpoints; shards + index; the converter and loader read them', () => {
  for (const [fx, layout] of [['qwen2_5_vl-tiny-a', 'hub'], ['qwen2_5_vl-tiny-b', 'v4.52']] as const) {
    const cfg = readJson(path.join(FIXTURES, fx, 'config.json'));
    const dir = path.join(tmp, `${fx}-src`);
    const r = writeQwenCheckpoint({ out: dir, config: cfg, layout, seed: 3, maxShardBytes: Math.ceil(totalBytes(qwenTensors(cfg, layout)) / 3) });
    const official = SafetensorsFile.open(path.join(FIXTURES, fx, 'model.safetensors'));
    const idx = readJson(path.join(dir, 'model.safetensors.index.json'));
    const src = new ShardedSafetensors(path.join(dir, 'model.safetensors.index.json'));
    assert.equal(keysShapes(src).sort(), keysShapes(official).sort());
    official.close();
    const shards = src.shards().sort();
    assert.ok(shards.length >= 3, `${shards.length} shards`);
    shards.forEach((s, i) => assert.is(s, `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
    assert.is(idx.metadata.total_size, r.bytes);
    assert.equal(Object.keys(idx.weight_map), Object.keys(idx.weight_map).slice().sort());
    assert.ok(src.keys().every(k => src.meta(k).dtype === 'BF16'));
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json', 'chat_template.json']) assert.ok(fs.existsSync(path.join(dir, f)), f);
    const out = path.join(tmp, `${fx}-policy`);
    const conv = convertQwen({ from: dir, out });
    assert.is(conv.tensors, src.keys().length);
    // bytes kept as stored (BF16), under the hub names
    const k = src.keys().find(x => x.endsWith('embed_tokens.weight'))!;
    const converted = new ShardedSafetensors(path.join(out, 'model.safetensors.index.json'));
    assert.equal(converted.read('model.embed_tokens.weight').data, src.read(k).data);
    converted.close();
    src.close();
    const model = loadQwen(out);
    assert.is(model.config.tie_word_embeddings, fx === 'qwen2_5_vl-tiny-b');
    model.dispose();
  }
});

test('Qwen tokenizer files: the real vocab copied, tokenizer_config.json with the 22 added tokens, an equivalent tokenizer.json', () => {
  const dir = path.join(tmp, 'qtok');
  writeQwenCheckpoint({ out: dir, config: readJson(path.join(FIXTURES, 'qwen2_5_vl-tiny-a', 'config.json')), tokenizer: path.join(FIXTURES, 'qwen2_5_vl-tokenizer') });
  const tc = readJson(path.join(dir, 'tokenizer_config.json'));
  assert.is(Object.keys(tc.added_tokens_decoder).length, 22);
  assert.equal(tc.added_tokens_decoder['151655'], { content: '<|image_pad|>', lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
  assert.is(tc.added_tokens_decoder['151657'].special, false);
  assert.is(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8'), fs.readFileSync(path.join(FIXTURES, 'qwen2_5_vl-tokenizer', 'vocab.json'), 'utf8'));
  const tj = readJson(path.join(dir, 'tokenizer.json'));
  assert.is(tj.model.type, 'BPE');
  assert.is(tj.added_tokens.length, 22);
  assert.throws(() => writeQwenCheckpoint({ out: path.join(tmp, 'qtok2'), config: readJson(path.join(FIXTURES, 'qwen2_5_vl-tiny-a', 'config.json')), tokenizer: tmp }),
    (e: Error) => e.message === `${tmp}: no vocab.json (the tokenizer folder holds the real Qwen2 vocab.json + merges.txt)`);
});

test('SAM2 tiny: 2.0 and 2.1 key sets equal the official tiny .pt files in order and shape; written .pt reads back and converts', () => {
  for (const fx of ['sam2-tiny-pt', 'sam2-tiny-v1-pt']) {
    const f = readJson(path.join(FIXTURES, fx, 'fixture.json'));
    const cfg = sam2ConfigFromHydra(f.config);
    const plans = sam2Tensors(cfg, sam2VideoFromHydra(f.config.model));
    const official = TorchCheckpoint.open(path.join(FIXTURES, fx, 'weights.pt'));
    assert.equal(plans.map(p => `${p.key} [${p.shape}]`), keysShapes(official));
    official.close();
    // the pickle is CPython's byte for byte (memo, TUPLEn, batches) up into state_dict()'s _metadata
    const zip = ZipReader.open(path.join(FIXTURES, fx, 'weights.pt'));
    const theirs = zip.read([...zip.entries.keys()].find(n => n.endsWith('/data.pkl'))!);
    zip.close();
    const ours = Buffer.from(pickleStateDict(plans.map(p => [p.key, p])));
    let same = 0;
    while (same < theirs.length && theirs[same] === ours[same]) same++;
    assert.ok(same > theirs.indexOf('_metadata') + 100, `pickles differ at byte ${same}`);
    const file = path.join(tmp, `${fx}.pt`);
    writeSam2Checkpoint(file, plans, 5);
    const ck = TorchCheckpoint.open(file);
    assert.equal(ck.keys(), plans.map(p => p.key));
    for (const p of [plans[0], plans[plans.length - 1]]) {
      assert.is(ck.meta(p.key).dtype, 'F32');
      assert.equal(new Uint8Array(new Float32Array(ck.read(p.key).data).buffer), tensorBytes(p.key, 'F32', p.shape, p.init, 5));
    }
    ck.close();
    const out = path.join(tmp, `${fx}-sam2`);
    const r = convertSam2({ from: file, out, config: cfg });
    assert.is(r.tensors + r.ignored, plans.length);
    loadSam2(out).dispose();
  }
  const l20 = sam2LargeTensors('2.0');
  const l21 = sam2LargeTensors('2.1');
  assert.is(l20.length, 900);
  assert.equal(l21.map(p => p.key).filter(k => !l20.some(p => p.key === k)), ['no_obj_embed_spatial', 'obj_ptr_tpos_proj.weight', 'obj_ptr_tpos_proj.bias']);
  assert.is(l21.reduce((s, p) => s + numel(p.shape), 0), 224446898);
});

test('torch writer: zip64 records, >1000 entries (SETITEMS batches), a bare OrderedDict, BF16/I64 storages, 64-byte aligned data', () => {
  const many = new Map(Array.from({ length: 1001 }, (_, i) => [`t.${i}`, { dtype: 'F32' as const, shape: [2], bytes: () => new Uint8Array(new Float32Array([i, -i]).buffer) }]));
  const file = path.join(tmp, 'many.pt');
  writeTorchCheckpoint(file, many, { wrap: null, forceZip64: true, root: 'weights' });
  const ck = TorchCheckpoint.open(file);
  assert.is(ck.keys().length, 1001);
  assert.equal([...ck.read('t.1000').data], [1000, -1000]);
  ck.close();
  const zip = ZipReader.open(file);
  assert.ok(zip.entries.has('weights/byteorder') && zip.entries.has('weights/version'));
  assert.ok([...zip.entries.values()].every(e => !e.name.includes('/data/') || e.dataOffset % 64 === 0));
  zip.close();
  const mixed = path.join(tmp, 'mixed.pt');
  writeTorchCheckpoint(mixed, [
    ['b', { dtype: 'BF16', shape: [3], bytes: () => tensorBytes('b', 'BF16', [3], normal(1), 0) }],
    ['i', { dtype: 'I64', shape: [1, 4], bytes: () => tensorBytes('i', 'I64', [1, 4], { kind: 'arange' }, 0) }],
    ['s', { dtype: 'F32', shape: [], bytes: () => new Uint8Array(new Float32Array([4.5]).buffer) }],
  ]);
  const m = TorchCheckpoint.open(mixed);
  assert.equal([m.meta('b').dtype, m.meta('i').dtype, m.meta('s').shape], ['BF16', 'I64', []]);
  assert.equal([...m.read('i').data], [0, 1, 2, 3]);
  assert.equal([...m.read('s').data], [4.5]);
  assert.ok(m.object instanceof Map && (m.object as Map<unknown, unknown>).has('model'));
  m.close();
  assert.ok(ZipReader.open(mixed).entries.has('archive/data.pkl'));
  assert.throws(() => writeTorchCheckpoint(path.join(tmp, 'dup.pt'), [['a', many.get('t.0')!], ['a', many.get('t.1')!]]), (e: Error) => /'a'.*appears twice/.test(e.message));
  assert.throws(() => pickleStateDict([['u', { dtype: 'U16', shape: [1] }]]), /torch has no storage for U16/);
  assert.throws(() => writeTorchCheckpoint(path.join(tmp, 'short.pt'), [['a', { dtype: 'F32', shape: [2], bytes: () => new Uint8Array(4) }]]), /4 bytes produced, 8 expected/);
  assert.not.ok(fs.existsSync(path.join(tmp, 'short.pt')));
});

test('CLIP tiny: the official tiny HF key set, F32 + I64 position ids, a 0-d logit_scale; HF vocab derived from the BPE file; converts and tokenizes alike', () => {
  const fx = path.join(FIXTURES, 'clip-tiny-hf');
  const dir = path.join(tmp, 'clip-src');
  writeClipCheckpoint({ out: dir, config: readJson(path.join(fx, 'config.json')), vocab: path.join(fx, 'bpe_simple_vocab_16e6.txt.gz') });
  const ours = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const official = SafetensorsFile.open(path.join(fx, 'model.safetensors'));
  const drop = (xs: string[]) => xs.filter(x => !x.startsWith('logit_scale')).sort();
  assert.equal(drop(keysShapes(ours)), drop(keysShapes(official)));
  assert.equal(ours.meta('logit_scale').shape, []);
  assert.is(ours.meta('text_model.embeddings.position_ids').dtype, 'I64');
  ours.close();
  official.close();
  const out = path.join(tmp, 'clip-out');
  const r = convertClip({ from: dir, out });
  assert.is(r.layout, 'hf');
  const text = 'a photo of the small striped triangle, left of 2 red circles!';
  assert.equal(ClipTokenizer.fromHF(out).encode(text), ClipTokenizer.fromBpeFile(path.join(fx, 'bpe_simple_vocab_16e6.txt.gz')).encode(text));
  assert.is(clipTensors(readJson(path.join(dir, 'config.json'))).length, ours.keys().length);
});

test('CLI: --help, an unknown model named, a tiny SAM2 config through the command line', () => {
  const run = (...a: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'tools/make-checkpoint.ts', ...a], { encoding: 'utf8' });
  const help = run('--help');
  assert.is(help.status, 0);
  assert.match(help.stdout, /usage: npx tsx tools\/make-checkpoint\.ts <model> --out <dir> \[options\]/);
  const bad = run('sam3_hiera_l', '--out', tmp);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /make-checkpoint\.ts: error: unknown model "sam3_hiera_l" \(known: qwen2_5_vl-3b, qwen2_5_vl-7b, sam2_hiera_l, sam2\.1_hiera_l, clip-vit-base-patch32\)/);
  const cfgFile = path.join(tmp, 'sam2-tiny.json');
  fs.writeFileSync(cfgFile, JSON.stringify(readJson(path.join(FIXTURES, 'sam2-tiny-pt', 'fixture.json')).config));
  const ok = run('sam2.1_hiera_l', '--out', path.join(tmp, 'cli'), '--config', cfgFile);
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /wrote sam2\.1_hiera_l: 324 tensors/);
  assert.is(TorchCheckpoint.open(path.join(tmp, 'cli', 'sam2.1_hiera_large.pt')).keys().length, 324);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
