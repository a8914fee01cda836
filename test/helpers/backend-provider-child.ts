/** Child of test/extension-points.test.ts: a backend is one file that registers a provider. */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, registerBackendProvider } from '../../src/index.ts';

registerBackendProvider({
  choice: 'jscpu',
  tfBackend: 'cpu',
  describe: 'the pure-JS kernels, registered as a provider',
  prepare: async () => {
    await import('@tensorflow/tfjs-backend-cpu');
    return tf.findBackend('cpu') !== undefined;
  },
});
const info = await initBackend({ quiet: true });
const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0];
console.log(JSON.stringify({ name: info.name, provider: info.provider, reason: info.reason, y }));
