import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './src/backend.ts';
import { worldSam2Config } from './src/data/world/models.ts';
import { Sam2Image } from './src/models/sam2/model.ts';
import { loadSegmenterModelFrom } from './src/pipeline/bundle.ts';
await initBackend();
for (const which of ['init', 'trained']) {
  const m = which === 'init' ? new Sam2Image(worldSam2Config('demo')).initialize(0) : loadSegmenterModelFrom(process.env.W ?? 'weights/demo');
  const px = tf.randomNormal([1, 3, 128, 128], 0, 1, 'float32', 3) as tf.Tensor4D;
  const f = m.encodeImage(px);
  const o1 = m.decode(f, { boxes: tf.tensor2d([[10, 10, 40, 40]]) }, 'all');
  const o2 = m.decode(f, { boxes: tf.tensor2d([[70, 60, 120, 110]]) }, 'all');
  console.log(which, 'max |mask diff|', tf.max(tf.abs(tf.sub(o1.lowResMasks, o2.lowResMasks))).dataSync()[0], 'mask range', tf.min(o1.lowResMasks).dataSync()[0], tf.max(o1.lowResMasks).dataSync()[0]);
  const sp1 = m.sam_prompt_encoder.forward(tf.tensor3d([[[10, 10], [40, 40]]]), Int32Array.from([2, 3]), true).sparse;
  const sp2 = m.sam_prompt_encoder.forward(tf.tensor3d([[[70, 60], [120, 110]]]), Int32Array.from([2, 3]), true).sparse;
  console.log('  sparse diff', tf.max(tf.abs(tf.sub(sp1, sp2))).dataSync()[0], 'sparse norm', tf.norm(sp1).dataSync()[0]);
  const vars = [...m.trainableParameters()];
  const { grads } = tf.variableGrads(() => tf.mean(m.decode(m.encodeImage(px), { boxes: tf.tensor2d([[10, 10, 40, 40]]) }, 'all').lowResMasks) as tf.Scalar, vars.map(([, v]) => v));
  const gnorm = (name: string) => { const v = vars.find(([n]) => n.includes(name)); return v ? tf.norm(grads[v[1].name]).dataSync()[0] : NaN; };
  console.log('  grad point_embeddings.2', gnorm('point_embeddings.2'), 'mask_tokens', gnorm('mask_tokens'), 'hyper', gnorm('output_hypernetworks_mlps.0.layers.0.weight'));
}
