/** npx tsx tools/convert-qwen2_5_vl.ts --from <hf model dir> [--out weights/qwen2_5_vl-7b] */
import { convertQwen } from '../src/models/qwen2_5_vl/convert.ts';
import { runCli } from '../src/util/cli.ts';

const SPEC = {
  name: 'npx tsx tools/convert-qwen2_5_vl.ts',
  summary: 'Convert a Hugging Face Qwen2.5-VL model directory (sharded safetensors, either key layout) into a policy directory, shard by shard, keeping the stored dtype.',
  options: {
    from: { type: 'string', required: true, placeholder: '<dir>', help: 'the HF model directory (config.json, *.safetensors, tokenizer files)' },
    out: { type: 'string', default: 'weights/qwen2_5_vl', placeholder: '<dir>', help: 'the policy directory to write' },
  },
  examples: ['npx tsx tools/convert-qwen2_5_vl.ts --from ~/hf/Qwen2.5-VL-7B-Instruct --out weights/dpad-7b/policy'],
} as const;

await runCli(SPEC, args => {
  const t0 = Date.now();
  const r = convertQwen({ from: args.from, out: args.out, onShard: (n, i, k) => process.stderr.write(`[${i + 1}/${k}] ${n}\n`) });
  console.log(`converted ${r.tensors} tensors into ${r.shards.length} shard(s) in ${args.out} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
});
