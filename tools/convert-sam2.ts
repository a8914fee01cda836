/**
 * tsx tools/convert-sam2.ts --from sam2_hiera_large.pt [--config sam2_hiera_l.yaml | --model sam2_hiera_l] [--out weights/sam2-hiera-l]
 * Without --config / --model the size is read off the weight shapes, then guessed from the file name.
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { convertSam2 } from '../src/models/sam2/convert.ts';

const { values } = parseArgs({ options: { from: { type: 'string' }, model: { type: 'string' }, config: { type: 'string' }, out: { type: 'string' } } });
if (!values.from || (values.model && values.config)) {
  console.error('usage: tsx tools/convert-sam2.ts --from <checkpoint.pt | .safetensors> [--config <hydra .yaml | .json> | --model sam2_hiera_l] [--out dir]');
  process.exit(2);
}
await initBackend();
const out = values.out ?? `weights/${(values.model ?? values.from.replace(/^.*\//, '').replace(/\.(pt|safetensors)$/, '')).replace(/_/g, '-')}`;
const r = convertSam2({ from: values.from, out, config: values.config ?? values.model });
console.log(`converted ${r.tensors} image-path tensors into ${out} (${r.ignored} video-only tensors left out)`);
