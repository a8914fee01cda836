/**
 * torch.nn.functional.interpolate as linear maps. Each 1-D resampling is a [out, in] weight matrix
 * built exactly as torch computes its coefficients, applied with matmuls, so the result is
 * differentiable and matches torch's arithmetic up to float32 summation order.
 *   bicubic (align_corners=False): A = -0.75, source = (dst + 0.5) * in/out - 0.5, border-clamped taps
 *   bilinear (align_corners=False): source clamped at 0, neighbours clamped at the border
 *   bilinear antialias=True: Pillow-style triangle filter widened by the downscale factor
 *   nearest with scale factor s: source = floor(dst / s)
 */
import * as tf from '@tensorflow/tfjs-core';

export type InterpMode = 'bicubic' | 'bilinear' | 'bilinear-aa' | 'nearest';

function cubic(x: number, a: number): number {
  x = Math.abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** The [out, in] matrix of one axis. `scale` overrides in/out (torch uses 1/scale_factor when one is given). */
export function interpolationMatrix(inSize: number, outSize: number, mode: InterpMode, scale?: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const s = scale ?? inSize / outSize;
  const clampIdx = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  for (let o = 0; o < outSize; o++) {
    if (mode === 'nearest') {
      m[o * inSize + Math.min(Math.floor(o * s), inSize - 1)] = 1;
    } else if (mode === 'bilinear') {
      const src = Math.max(s * (o + 0.5) - 0.5, 0);
      const i0 = Math.floor(src);
      const i1 = Math.min(i0 + 1, inSize - 1);
      const l1 = src - i0;
      m[o * inSize + Math.min(i0, inSize - 1)] += 1 - l1;
      m[o * inSize + i1] += l1;
    } else if (mode === 'bicubic') {
      const src = s * (o + 0.5) - 0.5;
      const i0 = Math.floor(src);
      const t = src - i0;
      const w = [cubic(t + 1, -0.75), cubic(t, -0.75), cubic(1 - t, -0.75), cubic(2 - t, -0.75)];
      for (let k = 0; k < 4; k++) m[o * inSize + clampIdx(i0 - 1 + k)] += w[k];
    } else {
      const support = s >= 1 ? s : 1;
      const inv = s >= 1 ? 1 / s : 1;
      const center = s * (o + 0.5);
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
      let total = 0;
      const ws: number[] = [];
      for (let j = xmin; j < xmax; j++) {
        const x = Math.abs((j - center + 0.5) * inv);
        const w = x < 1 ? 1 - x : 0;
        ws.push(w);
        total += w;
      }
      ws.forEach((w, k) => (m[o * inSize + xmin + k] = total ? w / total : 0));
    }
  }
  return m;
}

/** Resize x [B, C, H, W] to [B, C, outH, outW]. */
export function interpolate(x: tf.Tensor4D, outH: number, outW: number, mode: InterpMode, scaleFactor?: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, c, h, w] = x.shape;
    const sh = scaleFactor ? 1 / scaleFactor : undefined;
    const mh = tf.tensor2d(interpolationMatrix(h, outH, mode, sh), [outH, h]);
    const mw = tf.tensor2d(interpolationMatrix(w, outW, mode, sh), [outW, w]);
    // rows: [B*C*H, W] x [W, outW] -> then heights
    const xw = tf.matMul(x.reshape([b * c * h, w]), mw, false, true).reshape([b * c, h, outW]);
    const xt = tf.transpose(xw, [0, 2, 1]).reshape([b * c * outW, h]);
    const xh = tf.matMul(xt, mh, false, true).reshape([b * c, outW, outH]);
    return tf.transpose(xh, [0, 2, 1]).reshape([b, c, outH, outW]) as tf.Tensor4D;
  });
}
