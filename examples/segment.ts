/**
 * Segment an image from a query:
 *   npx tsx examples/segment.ts --image photo.jpg --query "the red apple" [--weights weights/demo] [--out out/segment]
 * Writes mask.png, overlay.png and result.json into --out.
 */
import * as path from 'node:path';
import { DEFAULT_WEIGHTS, initBackend, loadImage, loadPolicyFrom, loadSegmenterModelFrom, maskPng, overlayPng, runCli, saveBuffer, Segmenter, writeJsonAtomic } from '../src/index.ts';

const SPEC = {
  name: 'npm run segment --',
  summary: 'Segment the object a query describes: the policy reasons and answers a box and two points, SAM2 turns them into a mask.',
  options: {
    image: { type: 'string', required: true, placeholder: '<file>', help: 'the image (PNG, JPEG, ...)' },
    query: { type: 'string', required: true, placeholder: '<text>', help: 'what to segment' },
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/ and sam2/' },
    out: { type: 'string', default: 'out/segment', placeholder: '<dir>', help: 'where mask.png, overlay.png and result.json go' },
    'max-new-tokens': { type: 'int', default: 1024, min: 1, help: 'the most tokens the policy may generate' },
  },
  examples: ['npm run segment -- --image out/demo/test-0.png --query "the small striped triangle"'],
} as const;

await runCli(SPEC, async args => {
  await initBackend();
  const image = await loadImage(args.image);
  const seg = new Segmenter(loadPolicyFrom(args.weights), loadSegmenterModelFrom(args.weights));
  const t0 = performance.now();
  const r = await seg.segment(image, args.query, { maxNewTokens: args['max-new-tokens'] });
  const ms = performance.now() - t0;
  const out = args.out;
  if (r.mask) saveBuffer(path.join(out, 'mask.png'), await maskPng(r.mask, r.width, r.height));
  saveBuffer(path.join(out, 'overlay.png'), await overlayPng(image, { mask: r.mask, bbox: r.bbox, points: r.points, caption: r.caption, query: args.query }));
  const { mask, viewImage: _view, ...json } = r;
  writeJsonAtomic(path.join(out, 'result.json'), { ...json, maskArea: mask ? mask.reduce((a, b) => a + b, 0) : 0, seconds: ms / 1000 });
  console.log(`${r.reason ? `no mask: ${r.reason}` : `mask of ${mask!.reduce((a, b) => a + b, 0)} pixels, score ${r.score!.toFixed(3)}`}; caption: ${JSON.stringify(r.caption)}; ${r.generatedTokens} tokens in ${(ms / 1000).toFixed(1)} s -> ${out}`);
});
