/**
 * npx tsx tools/convert-sam2.ts --from sam2_hiera_large.pt [--config sam2_hiera_l.yaml | --model sam2_hiera_l] [--out weights/sam2-hiera-l]
 * Without --config / --model the size is read off the weight shapes, then guessed from the file name.
 */
import { initBackend } from '../src/backend.ts';
import { convertSam2 } from '../src/models/sam2/convert.ts';
import { runCli, UsageError } from '../src/util/cli.ts';

const SPEC = {
  name: 'npx tsx tools/convert-sam2.ts',
  summary: "Convert an official SAM2 / SAM2.1 checkpoint ({\"model\": state_dict} .pt, or safetensors with the same keys) into a segmenter directory (image path only).",
  options: {
    from: { type: 'string', required: true, placeholder: '<file>', help: 'the checkpoint (.pt or .safetensors)' },
    config: { type: 'string', placeholder: '<file>', help: "the official hydra config (.yaml, or its .json); default: read off the weight shapes" },
    model: { type: 'string', placeholder: '<name>', help: 'a released size instead of --config: sam2_hiera_t|s|b+|l, sam2.1_hiera_t|s|b+|l' },
    out: { type: 'string', placeholder: '<dir>', help: 'the segmenter directory (default: weights/<checkpoint name>)' },
  },
  examples: ['npx tsx tools/convert-sam2.ts --from ~/ckpt/sam2_hiera_large.pt --out weights/dpad-7b/sam2'],
} as const;

await runCli(SPEC, async args => {
  if (args.model && args.config) throw new UsageError('give --config or --model, not both');
  await initBackend();
  const out = args.out ?? `weights/${(args.model ?? args.from.replace(/^.*\//, '').replace(/\.(pt|safetensors)$/, '')).replace(/_/g, '-')}`;
  const r = convertSam2({ from: args.from, out, config: args.config ?? args.model });
  console.log(`converted ${r.tensors} image-path tensors into ${out} (${r.ignored} video-only tensors left out)`);
});
