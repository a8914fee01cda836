/** tsx tools/convert-qwen2_5_vl.ts --from <hf model dir> [--out weights/qwen2_5_vl-7b] */
import { parseArgs } from 'node:util';
import { convertQwen } from '../src/models/qwen2_5_vl/convert.ts';

const { values } = parseArgs({ options: { from: { type: 'string' }, out: { type: 'string', default: 'weights/qwen2_5_vl' } } });
if (!values.from) {
  console.error('usage: tsx tools/convert-qwen2_5_vl.ts --from <hf model dir> [--out dir]');
  process.exit(2);
}
const t0 = Date.now();
const r = convertQwen({ from: values.from, out: values.out!, onShard: (n, i, k) => process.stderr.write(`[${i + 1}/${k}] ${n}\n`) });
console.log(`converted ${r.tensors} tensors into ${r.shards.length} shard(s) in ${values.out} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
