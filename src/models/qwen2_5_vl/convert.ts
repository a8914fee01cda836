/**
 * Convert a Hugging Face Qwen2.5-VL model directory (sharded safetensors + index, config, tokenizer)
 * into the project layout (hub key names), streaming: one output shard per input shard, one tensor
 * in memory at a time, bytes copied in their stored dtype. Every key is checked against the shapes
 * the config implies, and all problems are reported at once before anything is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../io/atomic.ts';
import { SafetensorsFile, ShardedSafetensors, writeSafetensors } from '../../io/safetensors.ts';
import { qwenConfigFrom, type QwenConfig } from './config.ts';
import { qwenKeyMap } from './weights.ts';

/** Every parameter of the model with its checkpoint shape, as a function of the config. */
export function qwenParamShapes(c: QwenConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const v = c.vision_config;
  const vd = v.hidden_size;
  m.set('visual.patch_embed.proj.weight', [vd, v.in_chans, v.temporal_patch_size, v.patch_size, v.patch_size]);
  for (let i = 0; i < v.depth; i++) {
    const b = `visual.blocks.${i}.`;
    m.set(b + 'norm1.weight', [vd]); m.set(b + 'norm2.weight', [vd]);
    m.set(b + 'attn.qkv.weight', [3 * vd, vd]); m.set(b + 'attn.qkv.bias', [3 * vd]);
    m.set(b + 'attn.proj.weight', [vd, vd]); m.set(b + 'attn.proj.bias', [vd]);
    for (const n of ['gate_proj', 'up_proj']) { m.set(b + `mlp.${n}.weight`, [v.intermediate_size, vd]); m.set(b + `mlp.${n}.bias`, [v.intermediate_size]); }
    m.set(b + 'mlp.down_proj.weight', [vd, v.intermediate_size]); m.set(b + 'mlp.down_proj.bias', [vd]);
  }
  const mh = vd * v.spatial_merge_size ** 2;
  m.set('visual.merger.ln_q.weight', [vd]);
  m.set('visual.merger.mlp.0.weight', [mh, mh]); m.set('visual.merger.mlp.0.bias', [mh]);
  m.set('visual.merger.mlp.2.weight', [v.out_hidden_size, mh]); m.set('visual.merger.mlp.2.bias', [v.out_hidden_size]);
  const d = c.hidden_size;
  const hd = d / c.num_attention_heads;
  m.set('model.embed_tokens.weight', [c.vocab_size, d]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const b = `model.layers.${i}.`;
    m.set(b + 'self_attn.q_proj.weight', [c.num_attention_heads * hd, d]); m.set(b + 'self_attn.q_proj.bias', [c.num_attention_heads * hd]);
    for (const n of ['k_proj', 'v_proj']) { m.set(b + `self_attn.${n}.weight`, [c.num_key_value_heads * hd, d]); m.set(b + `self_attn.${n}.bias`, [c.num_key_value_heads * hd]); }
    m.set(b + 'self_attn.o_proj.weight', [d, c.num_attention_heads * hd]);
    m.set(b + 'mlp.gate_proj.weight', [c.intermediate_size, d]); m.set(b + 'mlp.up_proj.weight', [c.intermediate_size, d]);
    m.set(b + 'mlp.down_proj.weight', [d, c.intermediate_size]);
    m.set(b + 'input_layernorm.weight', [d]); m.set(b + 'post_attention_layernorm.weight', [d]);
  }
  m.set('model.norm.weight', [d]);
  if (!c.tie_word_embeddings) m.set('lm_head.weight', [c.vocab_size, d]);
  return m;
}

export interface ConvertQwenResult {
  config: QwenConfig;
  shards: string[];
  tensors: number;
}

export function convertQwen(opts: { from: string; out: string; onShard?: (name: string, i: number, n: number) => void }): ConvertQwenResult {
  const cfgFile = path.join(opts.from, 'config.json');
  if (!fs.existsSync(cfgFile)) throw new Error(`${opts.from}: no config.json`);
  const rawCfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  const config = qwenConfigFrom(rawCfg, cfgFile);
  const idx = path.join(opts.from, 'model.safetensors.index.json');
  const single = path.join(opts.from, 'model.safetensors');
  const shardFiles: { name: string; open: () => SafetensorsFile }[] = [];
  let sharded: ShardedSafetensors | null = null;
  if (fs.existsSync(idx)) {
    sharded = new ShardedSafetensors(idx);
    for (const s of sharded.shards()) shardFiles.push({ name: s, open: () => SafetensorsFile.open(path.join(opts.from, s)) });
  } else if (fs.existsSync(single)) shardFiles.push({ name: 'model.safetensors', open: () => SafetensorsFile.open(single) });
  else throw new Error(`${opts.from}: neither model.safetensors.index.json nor model.safetensors`);

  // pass 1: headers only: check names and shapes against the config, all problems at once
  const expected = qwenParamShapes(config);
  const map = qwenKeyMap(config.tie_word_embeddings);
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const sf of shardFiles) {
    const f = sf.open();
    try {
      for (const k of f.keys()) {
        const p = map(k);
        if (p === null || k.endsWith('.inv_freq')) continue;
        const want = expected.get(p);
        if (!want) { problems.push(`unexpected ${k}`); continue; }
        const got = f.meta(k).shape;
        if (got.join() !== want.join()) problems.push(`${k}: expected [${want}], got [${got}]`);
        seen.add(p);
      }
    } finally {
      f.close();
    }
  }
  for (const p of expected.keys()) if (!seen.has(p)) problems.push(`missing ${p}`);
  if (problems.length) throw new Error(`${opts.from}: the checkpoint does not fit its config.json: ${problems.length} problems: ${problems.slice(0, 30).join('; ')}${problems.length > 30 ? '; ...' : ''}`);

  // pass 2: one shard at a time, renamed keys, bytes copied as stored
  fs.mkdirSync(opts.out, { recursive: true });
  const outShards: string[] = [];
  const weightMap: Record<string, string> = {};
  let count = 0;
  shardFiles.forEach((sf, i) => {
    const name = shardFiles.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shardFiles.length).padStart(5, '0')}.safetensors`;
    const f = sf.open();
    try {
      const tensors = new Map<string, { dtype: ReturnType<SafetensorsFile['meta']>['dtype']; shape: number[]; bytes: () => Uint8Array }>();
      for (const k of f.keys()) {
        const p = map(k);
        if (p === null || k.endsWith('.inv_freq')) continue;
        const meta = f.meta(k);
        tensors.set(p, { dtype: meta.dtype, shape: meta.shape, bytes: () => f.bytes(k) });
        weightMap[p] = name;
        count++;
      }
      writeSafetensors(path.join(opts.out, name), tensors, { metadata: { format: 'pt', source: sf.name } });
    } finally {
      f.close();
    }
    outShards.push(name);
    opts.onShard?.(name, i, shardFiles.length);
  });
  if (outShards.length > 1) writeJsonAtomic(path.join(opts.out, 'model.safetensors.index.json'), { metadata: { converted_by: 'dpad-ts' }, weight_map: weightMap });
  writeJsonAtomic(path.join(opts.out, 'config.json'), rawCfg);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'preprocessor_config.json', 'chat_template.json', 'vocab.json', 'merges.txt']) {
    const p = path.join(opts.from, f);
    if (fs.existsSync(p)) fs.copyFileSync(p, path.join(opts.out, f));
  }
  sharded?.close();
  return { config, shards: outShards, tensors: count };
}
