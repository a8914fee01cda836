/**
 * npx tsx tools/make-checkpoint.ts <model> --out <dir> [--layout hub|v4.52] [--tokenizer <dir>] [--vocab <file>] [--config <file>] [--seed n]
 *
 * Writes a stand-in for a released checkpoint: the exact public layout (files, key names, dtypes,
 * sharding, configs) filled with seeded random weights, streamed one tensor at a time so even 7B
 * never needs its size in memory. --config swaps the official sizes for another config of the
 * same family (a tiny one for tests) through the same code path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSam2Config } from '../src/models/sam2/config.ts';
import { parseYaml } from '../src/models/sam2/yaml.ts';
import { CLIP_B32_HUB_CONFIG, writeClipCheckpoint } from '../src/realsize/clip.ts';
import { parseSize } from '../src/realsize/layout.ts';
import { QWEN2_5_VL_3B_HUB_CONFIG, QWEN2_5_VL_7B_HUB_CONFIG, writeQwenCheckpoint, type QwenLayout } from '../src/realsize/qwen.ts';
import { sam2LargeTensors, sam2Tensors, sam2VideoFromHydra, writeSam2Checkpoint } from '../src/realsize/sam2.ts';
import { runCli, UsageError } from '../src/util/cli.ts';

const MODELS = ['qwen2_5_vl-3b', 'qwen2_5_vl-7b', 'sam2_hiera_l', 'sam2.1_hiera_l', 'clip-vit-base-patch32'] as const;

const SPEC = {
  name: 'npx tsx tools/make-checkpoint.ts',
  summary: 'Write a random-weight stand-in of a released checkpoint in its exact public layout: Qwen2.5-VL-3B/7B-Instruct (HF BF16 shards), SAM 2.0/2.1 hiera-large ({"model": state_dict} .pt), openai/clip-vit-base-patch32 (HF safetensors).',
  positionals: { name: '<model>', help: MODELS.join(' | '), min: 1, max: 1 },
  options: {
    out: { type: 'string', required: true, placeholder: '<dir>', help: 'the model directory to write (SAM2: a .pt file, or a directory to put sam2[.1]_hiera_large.pt in)' },
    layout: { type: 'string', choices: ['hub', 'v4.52'], default: 'hub', help: 'Qwen key layout: hub = visual.* / model.* (transformers < 4.52), v4.52 = model.visual.* / model.language_model.*' },
    tokenizer: { type: 'string', placeholder: '<dir>', help: 'Qwen: a folder with the real vocab.json + merges.txt (copied; tokenizer_config.json and tokenizer.json are written beside them)' },
    vocab: { type: 'string', placeholder: '<file>', help: "CLIP: OpenAI's bpe_simple_vocab_16e6.txt.gz (HF vocab.json + merges.txt are derived from it)" },
    config: { type: 'string', placeholder: '<file>', help: 'another config of the same family instead of the official one: a config.json (Qwen, CLIP) or a hydra .yaml/.json (SAM2)' },
    seed: { type: 'int', default: 0, min: 0, help: 'the seed of the random weights' },
    'max-shard-size': { type: 'string', default: '4GB', placeholder: '<size>', help: "Qwen: save_pretrained's max_shard_size (GB = 10^9 bytes)" },
  },
  examples: [
    'npx tsx tools/make-checkpoint.ts qwen2_5_vl-3b --out /tmp/realsize/Qwen2.5-VL-3B-Instruct --tokenizer ../shared/fixtures/qwen2_5_vl-tokenizer',
    'npx tsx tools/make-checkpoint.ts sam2.1_hiera_l --out /tmp/realsize/sam2.1_hiera_large.pt',
    'npx tsx tools/make-checkpoint.ts clip-vit-base-patch32 --out /tmp/realsize/clip-vit-base-patch32 --vocab ../shared/fixtures/clip-tiny-hf/bpe_simple_vocab_16e6.txt.gz',
  ],
} as const;

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the config (${(e as Error).message})`);
  }
}

const gb = (b: number) => `${(b / 1e9).toFixed(3)} GB`;

await runCli(SPEC, args => {
  const model = args._[0];
  if (!(MODELS as readonly string[]).includes(model)) throw new UsageError(`unknown model ${JSON.stringify(model)} (known: ${MODELS.join(', ')})`);
  const t0 = Date.now();
  if (model.startsWith('qwen')) {
    if (args.vocab) throw new UsageError('--vocab is for CLIP; give Qwen the --tokenizer folder');
    const config = args.config ? readJson(args.config) : model === 'qwen2_5_vl-3b' ? QWEN2_5_VL_3B_HUB_CONFIG : QWEN2_5_VL_7B_HUB_CONFIG;
    const r = writeQwenCheckpoint({
      out: args.out, config, layout: args.layout as QwenLayout, seed: args.seed, tokenizer: args.tokenizer,
      maxShardBytes: parseSize(args['max-shard-size']),
      onShard: (name, i, k, bytes) => process.stderr.write(`[${i + 1}/${k}] ${name} ${gb(bytes)} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`),
    });
    console.log(`wrote ${model} (${args.layout} layout): ${r.tensors} tensors, ${gb(r.bytes)} of weights, ${r.files.length} files in ${args.out} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return;
  }
  if (model.startsWith('sam2')) {
    if (args.tokenizer || args.vocab) throw new UsageError('SAM2 checkpoints hold no tokenizer: drop --tokenizer / --vocab');
    const name = model === 'sam2_hiera_l' ? 'sam2_hiera_large.pt' : 'sam2.1_hiera_large.pt';
    const file = args.out.endsWith('.pt') ? args.out : path.join(args.out, name);
    let plans;
    if (args.config) {
      const text = fs.readFileSync(args.config, 'utf8');
      const tree = (/\.ya?ml$/i.test(args.config) ? parseYaml(text, args.config) : JSON.parse(text)) as Record<string, unknown>;
      const node = (tree.model ?? tree) as Record<string, unknown>;
      plans = sam2Tensors(readSam2Config(args.config), sam2VideoFromHydra(node));
    } else plans = sam2LargeTensors(model === 'sam2_hiera_l' ? '2.0' : '2.1');
    const r = writeSam2Checkpoint(file, plans, args.seed);
    console.log(`wrote ${model}: ${r.tensors} tensors, ${gb(r.bytes)} of weights, ${file} ${gb(r.fileBytes)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return;
  }
  if (args.tokenizer) throw new UsageError('--tokenizer is for Qwen; give CLIP the --vocab file');
  const config = args.config ? readJson(args.config) : CLIP_B32_HUB_CONFIG;
  const r = writeClipCheckpoint({ out: args.out, config, seed: args.seed, vocab: args.vocab });
  console.log(`wrote ${model}: ${r.tensors} tensors, ${gb(r.bytes)} of weights, ${r.files.length} files in ${args.out} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
});
