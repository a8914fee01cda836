/**
 * npx tsx tools/convert-clip.ts --from <model dir | weights file> [--out weights/clip-vit-b32]
 *                               [--config config.json] [--layout hf|openai] [--vocab bpe_simple_vocab_16e6.txt.gz]
 * A model directory holds config.json + model.safetensors (or pytorch_model.bin); without a
 * config.json, OpenAI-layout weights give their configuration by their shapes (build_model).
 */
import { initBackend } from '../src/backend.ts';
import { convertClip } from '../src/models/clip/convert.ts';
import type { ClipLayout } from '../src/models/clip/weights.ts';
import { runCli } from '../src/util/cli.ts';

const SPEC = {
  name: 'npx tsx tools/convert-clip.ts',
  summary: 'Convert CLIP weights (an HF openai/clip-vit-base-patch32 directory, or an OpenAI-named state dict) into a scorer directory.',
  options: {
    from: { type: 'string', required: true, placeholder: '<dir|file>', help: 'the model directory or weights file' },
    out: { type: 'string', default: 'weights/clip-vit-b32', placeholder: '<dir>', help: 'the scorer directory to write' },
    config: { type: 'string', placeholder: '<file>', help: "a config.json (default: the model directory's, or the OpenAI weights' shapes)" },
    layout: { type: 'string', choices: ['hf', 'openai'], help: 'the key layout (default: detected)' },
    vocab: { type: 'string', placeholder: '<file>', help: 'bpe_simple_vocab_16e6.txt.gz, for the OpenAI layout' },
  },
  examples: ['npx tsx tools/convert-clip.ts --from ~/hf/clip-vit-base-patch32 --out weights/dpad-7b/clip'],
} as const;

await runCli(SPEC, async args => {
  await initBackend();
  const r = convertClip({ from: args.from, out: args.out, config: args.config, layout: args.layout as ClipLayout | undefined, vocab: args.vocab });
  console.log(`converted ${r.tensors} tensors (${r.layout} layout) into ${args.out}: embed ${r.config.embed}, vision ${r.config.vision.width}x${r.config.vision.layers}, text ${r.config.text.width}x${r.config.text.layers}`);
});
