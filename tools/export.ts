/**
 * npx tsx tools/export.ts --run <run dir> --out <weights dir> [--weights <base weights dir>] [--layout hub|transformers] [--dtype F32|BF16]
 * (npm run export -- ...). A training run's latest checkpoint (full fine-tuning or LoRA) -> a weights
 * directory that `npm run segment -- --weights <dir>` and `npm run eval -- --weights <dir>` accept
 * (src/rl/export.ts): policy/ (merged, HF layout), sam2/ and clip/ from the base, adapter/ (PEFT) for LoRA.
 */
import { initBackend } from '../src/backend.ts';
import { exportRun } from '../src/rl/export.ts';
import { runCli } from '../src/util/cli.ts';

const SPEC = {
  name: 'npm run export --',
  summary: "Export a training run's latest checkpoint (full fine-tuning or LoRA) as a weights directory for segment / eval --weights: policy/ with the adapters merged (a full HF-layout checkpoint), sam2/ and clip/ from the base weights, and for LoRA runs adapter/ in PEFT's format.",
  options: {
    run: { type: 'string', required: true, placeholder: '<dir>', help: 'the training run folder (its checkpoints/latest), or one checkpoint folder' },
    out: { type: 'string', required: true, placeholder: '<dir>', help: 'the weights directory to write' },
    weights: { type: 'string', placeholder: '<dir>', help: "the base weights the run started from (default: the run's run.json, else weights/demo)" },
    layout: { type: 'string', default: 'hub', choices: ['hub', 'transformers'], help: "key naming of policy/: 'hub' (the released checkpoints') or 'transformers' (>= 4.52 module names)" },
    dtype: { type: 'string', default: 'F32', choices: ['F32', 'BF16'], help: "policy/'s dtype (the hub's is BF16)" },
    'base-model': { type: 'string', placeholder: '<name>', help: "adapter/adapter_config.json's base_model_name_or_path, e.g. Qwen/Qwen2.5-VL-7B-Instruct (default: the base policy folder)" },
    overwrite: { type: 'boolean', help: 'replace an existing --out' },
  },
  examples: ['npm run export -- --run runs/world-lora --out weights/world-lora', 'npm run segment -- --weights weights/world-lora --image out/demo/test-0.png --query "the red circle"'],
} as const;

await runCli(SPEC, async args => {
  await initBackend();
  const t0 = Date.now();
  const r = exportRun({
    run: args.run, out: args.out, weights: args.weights, layout: args.layout as 'hub' | 'transformers', dtype: args.dtype as 'F32' | 'BF16',
    baseModel: args['base-model'], overwrite: args.overwrite,
  });
  console.log(`exported ${r.checkpoint} (step ${r.step}, ${r.kind === 'adapter' ? `LoRA adapter merged, ${r.adapterKeys.length / 2} modules` : 'full fine-tuning'}) on ${r.weights} -> ${r.out}: policy/ (${r.shards.join(', ')}), sam2/, clip/${r.kind === 'adapter' ? ', adapter/ (PEFT)' : ''} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
});
