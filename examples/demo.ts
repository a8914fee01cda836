/**
 * npm run demo: segments a few images of the world's test split with the demo weights, writes an
 * overlay and the JSON result per image, and prints gIoU / cIoU.
 *   npx tsx examples/demo.ts [--weights weights/demo] [--n 6] [--out out/demo]
 */
import * as path from 'node:path';
import { DEFAULT_WEIGHTS, giouCiou, initBackend, loadPolicyFrom, loadSegmenterModelFrom, maskArea, maskIntersectionUnion, overlayPng, runCli, saveBuffer, Segmenter, worldSample, writeJsonAtomic } from '../src/index.ts';

const SPEC = {
  name: 'npm run demo --',
  summary: "Segment images of the embedded world's test split with a weights directory; writes an overlay and a JSON result per image and prints gIoU / cIoU.",
  options: {
    weights: { type: 'string', default: DEFAULT_WEIGHTS, placeholder: '<dir>', help: 'a weights directory with policy/ and sam2/' },
    n: { type: 'int', default: 6, min: 1, help: 'how many test images' },
    out: { type: 'string', default: 'out/demo', placeholder: '<dir>', help: 'where the overlays and JSON results go' },
  },
} as const;

await runCli(SPEC, async args => {
  await initBackend();
  const t0 = performance.now();
  const seg = new Segmenter(loadPolicyFrom(args.weights), loadSegmenterModelFrom(args.weights));
  const records: { i: number; u: number }[] = [];
  for (let k = 0; k < args.n; k++) {
    const s = worldSample('test', k);
    const r = await seg.segment(s.image, s.query, { maxNewTokens: 160 });
    const iu = r.mask ? maskIntersectionUnion(r.mask, s.mask) : { i: 0, u: maskArea(s.mask) };
    records.push(iu);
    const title = `IoU ${(100 * (iu.u ? iu.i / iu.u : 0)).toFixed(1)}% · ${s.id}`;
    saveBuffer(path.join(args.out, `${s.id}.png`), await overlayPng(s.image, { mask: r.mask, bbox: r.bbox, points: r.points, caption: r.caption, query: s.query, groundTruth: { mask: s.mask, box: s.box }, title }));
    const { mask, ...json } = r;
    writeJsonAtomic(path.join(args.out, `${s.id}.json`), { ...json, groundTruth: { box: s.box, caption: s.caption }, iou: iu.u ? iu.i / iu.u : 0 });
    console.log(`${s.id}  "${s.query}" -> ${r.reason ? `no mask (${r.reason.slice(0, 60)})` : `IoU ${(iu.i / Math.max(iu.u, 1)).toFixed(3)}`}  caption: ${JSON.stringify(r.caption)}`);
  }
  const m = giouCiou(records);
  console.log(`gIoU ${(m.gIoU * 100).toFixed(1)}  cIoU ${(m.cIoU * 100).toFixed(1)}  over ${records.length} test images in ${((performance.now() - t0) / 1000).toFixed(1)} s; overlays and JSON in ${args.out}`);
});
