/** tsx tools/convert-sam2.ts --from sam2.1_hiera_large.pt [--model sam2.1_hiera_l] [--out weights/sam2.1-hiera-l] */
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { convertSam2 } from '../src/models/sam2/convert.ts';

const { values } = parseArgs({ options: { from: { type: 'string' }, model: { type: 'string' }, out: { type: 'string' } } });
if (!values.from) {
  console.error('usage: tsx tools/convert-sam2.ts --from <checkpoint.pt | .safetensors> [--model sam2.1_hiera_l] [--out dir]');
  process.exit(2);
}
await initBackend();
const out = values.out ?? `weights/${(values.model ?? values.from.replace(/^.*\//, '').replace(/\.(pt|safetensors)$/, '')).replace(/_/g, '-')}`;
const r = convertSam2({ from: values.from, out, config: values.model });
console.log(`converted ${r.tensors} image-path tensors into ${out} (${r.ignored} video-only tensors left out)`);
