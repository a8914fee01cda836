/**
 * The FPN neck's sine position encoding (PositionEmbeddingSine, normalize=True, scale 2π,
 * temperature 10000): [1, d, H, W] with the y features first, then x. The image predictor does
 * not feed it to the mask decoder (which uses the prompt encoder's random features); it is the
 * `vision_pos_enc` of the backbone output, used by SAM2's video memory.
 */
import * as tf from '@tensorflow/tfjs-core';

export function sinePositionEncoding(h: number, w: number, d: number, temperature = 10000): tf.Tensor4D {
  if (d % 4) throw new Error(`sine position encoding: d_model ${d} must be a multiple of 4`);
  const f = Math.fround;
  const npf = d / 2;
  const dimT = new Float32Array(npf);
  for (let i = 0; i < npf; i++) dimT[i] = f(Math.pow(temperature, f((2 * Math.floor(i / 2)) / npf)));
  const eps = 1e-6;
  const scale = 2 * Math.PI;
  const out = new Float32Array(d * h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const ye = f(f((y + 1) / f(h + eps)) * f(scale));
    const xe = f(f((x + 1) / f(w + eps)) * f(scale));
    for (let i = 0; i < npf; i++) {
      const py = f(ye / dimT[i]);
      const px = f(xe / dimT[i]);
      // even feature indices take sin, odd cos; y block first, then x
      out[i * h * w + y * w + x] = i % 2 === 0 ? Math.sin(py) : Math.cos(py);
      out[(npf + i) * h * w + y * w + x] = i % 2 === 0 ? Math.sin(px) : Math.cos(px);
    }
  }
  return tf.tensor4d(out, [1, d, h, w]);
}
