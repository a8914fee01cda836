/**
 * tsx tools/convert-clip.ts --from <model dir | weights file> [--out weights/clip-vit-b32]
 *                           [--config config.json] [--layout hf|openai] [--vocab bpe_simple_vocab_16e6.txt.gz]
 * A model directory holds config.json + model.safetensors (or pytorch_model.bin); without a
 * config.json, OpenAI-layout weights give their configuration by their shapes (build_model).
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { convertClip } from '../src/models/clip/convert.ts';
import type { ClipLayout } from '../src/models/clip/weights.ts';

const { values } = parseArgs({
  options: { from: { type: 'string' }, out: { type: 'string', default: 'weights/clip-vit-b32' }, config: { type: 'string' }, layout: { type: 'string' }, vocab: { type: 'string' } },
});
if (!values.from) {
  console.error('usage: tsx tools/convert-clip.ts --from <model dir | weights file> [--out dir] [--config file] [--layout hf|openai] [--vocab bpe.gz]');
  process.exit(2);
}
await initBackend();
const r = convertClip({ from: values.from, out: values.out!, config: values.config, layout: values.layout as ClipLayout | undefined, vocab: values.vocab });
console.log(`converted ${r.tensors} tensors (${r.layout} layout) into ${values.out}: embed ${r.config.embed}, vision ${r.config.vision.width}x${r.config.vision.layers}, text ${r.config.text.width}x${r.config.text.layers}`);
