/**
 * Segment an image from a query:
 *   npx tsx examples/segment.ts --image photo.jpg --query "the red apple" [--weights weights/demo] [--out out/segment]
 * Writes mask.png, overlay.png and result.json into --out.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { loadImage } from '../src/io/image.ts';
import { DEFAULT_WEIGHTS, loadPolicyFrom, loadSegmenterModelFrom } from '../src/pipeline/bundle.ts';
import { maskPng, overlayPng, saveBuffer } from '../src/pipeline/overlay.ts';
import { Segmenter } from '../src/pipeline/segment.ts';

const { values } = parseArgs({ options: { image: { type: 'string' }, query: { type: 'string' }, weights: { type: 'string', default: DEFAULT_WEIGHTS }, out: { type: 'string', default: 'out/segment' }, 'max-new-tokens': { type: 'string', default: '1024' } } });
if (!values.image || !values.query) {
  console.error('usage: npx tsx examples/segment.ts --image <file> --query <text> [--weights <dir>] [--out <dir>]');
  process.exit(2);
}
await initBackend();
const image = await loadImage(values.image);
const seg = new Segmenter(loadPolicyFrom(values.weights!), loadSegmenterModelFrom(values.weights!));
const t0 = performance.now();
const r = await seg.segment(image, values.query, { maxNewTokens: Number(values['max-new-tokens']) });
const ms = performance.now() - t0;
const out = values.out!;
if (r.mask) saveBuffer(path.join(out, 'mask.png'), await maskPng(r.mask, r.width, r.height));
saveBuffer(path.join(out, 'overlay.png'), await overlayPng(image, { mask: r.mask, bbox: r.bbox, points: r.points, caption: r.caption }));
const { mask, ...json } = r;
writeJsonAtomic(path.join(out, 'result.json'), { ...json, maskArea: mask ? mask.reduce((a, b) => a + b, 0) : 0, seconds: ms / 1000 });
console.log(`${r.reason ? `no mask: ${r.reason}` : `mask of ${mask!.reduce((a, b) => a + b, 0)} pixels, score ${r.score!.toFixed(3)}`}; caption: ${JSON.stringify(r.caption)}; ${r.tokens} tokens in ${(ms / 1000).toFixed(1)} s -> ${out}`);
