import { initBackend } from './src/backend.ts';
import { worldSample } from './src/data/world/generator.ts';
import { loadSegmenterModelFrom } from './src/pipeline/bundle.ts';
import { Sam2Predictor } from './src/models/sam2/predictor.ts';
await initBackend();
const p = new Sam2Predictor(loadSegmenterModelFrom('weights/demo'));
for (let i = 0; i < 3; i++) {
  const s = worldSample('test', i);
  p.setImage(s.image);
  const a = p.predict({ box: [s.box[0], s.box[1], s.box[2] + 1, s.box[3] + 1], points: s.points, labels: [1, 1], multimask: true });
  const b = p.predict({ box: [0, 0, 40, 40], points: [[20, 20], [30, 30]], labels: [1, 1], multimask: true });
  const diff = a.masks.map((m, k) => m.reduce((acc, v, j) => acc + (v !== b.masks[k][j] ? 1 : 0), 0));
  const area = a.masks.map(m => m.reduce((x, y) => x + y, 0));
  console.log(i, 'scores', a.scores.map(x => x.toFixed(3)), b.scores.map(x => x.toFixed(3)), 'diff px', diff, 'area', area, 'gt', s.mask.reduce((x, y) => x + y, 0));
}
