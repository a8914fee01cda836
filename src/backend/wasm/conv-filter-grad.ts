/** Conv2DBackpropFilter for wasm as one im2col matmul. */
import * as tf from '@tensorflow/tfjs-core';
import type { WasmLike } from './bridge.ts';

/**
 * Conv2DBackpropFilter (the weight gradient of every convolution) for wasm, which lacks it: the
 * bridged cpu kernel loops per output element and took ~1.8 s for SAM2's 7x7 patch embedding at
 * 128 px. Here the input patches are gathered once into [KH*KW*Cin, N*OH*OW] and one wasm
 * BatchMatMul with dy [N*OH*OW, Cout] gives the filter gradient. NHWC only (what tfjs's conv2d
 * gradient asks for); anything else falls through to the bridged kernel.
 */
export function registerFastConvFilterGrad(): void {
  const bridged = tf.getKernel('Conv2DBackpropFilter', 'wasm');
  const matmul = tf.getKernel('BatchMatMul', 'wasm');
  if (!bridged || !matmul) return;
  tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      const a = attrs as unknown as { strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
      if (a.dataFormat !== 'NHWC' || x.dtype !== 'float32') return bridged.kernelFunc({ inputs, attrs, backend });
      const be = backend as unknown as WasmLike & { disposeData(id: tf.DataId): void };
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
      const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
      const top = info.padInfo.top;
      const left = info.padInfo.left;
      const xv = be.readSync(x.dataId) as Float32Array;
      const M = N * OH * OW;
      const K = KH * KW * C;
      const cols = new Float32Array(K * M); // row (kh, kw, c), column (n, oh, ow); zero padding
      for (let kh = 0; kh < KH; kh++) {
        for (let kw = 0; kw < KW; kw++) {
          for (let n = 0; n < N; n++) {
            for (let oh = 0; oh < OH; oh++) {
              const ih = oh * sh + kh - top;
              if (ih < 0 || ih >= H) continue;
              for (let ow = 0; ow < OW; ow++) {
                const iw = ow * sw + kw - left;
                if (iw < 0 || iw >= W) continue;
                const src = ((n * H + ih) * W + iw) * C;
                const col = (n * OH + oh) * OW + ow;
                const row = (kh * KW + kw) * C;
                for (let c = 0; c < C; c++) cols[(row + c) * M + col] = xv[src + c];
              }
            }
          }
        }
      }
      const colsInfo = be.makeOutput([1, K, M], 'float32', undefined, cols);
      const dyInfo = { dataId: dy.dataId, shape: [1, M, CO], dtype: dy.dtype };
      const prod = matmul.kernelFunc({ inputs: { a: colsInfo, b: dyInfo }, attrs: { transposeA: false, transposeB: false }, backend }) as tf.TensorInfo;
      be.disposeData(colsInfo.dataId);
      const out = be.makeOutput(a.filterShape, 'float32', undefined, (be.readSync(prod.dataId) as Float32Array).slice());
      be.disposeData(prod.dataId);
      return out;
    },
  });
}
