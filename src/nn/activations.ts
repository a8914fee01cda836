/** Activation functions by the names the official configs use. */
import * as tf from '@tensorflow/tfjs-core';

/** exact GELU: 0.5 x (1 + erf(x / sqrt 2)) (torch.nn.GELU(), HF "gelu") */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/** tanh-approximated GELU (HF "gelu_pytorch_tanh", "gelu_new") */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
  });
}

/** CLIP's QuickGELU: x * sigmoid(1.702 x) */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/** SiLU / swish: x * sigmoid(x) */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

export function relu(x: tf.Tensor): tf.Tensor {
  return tf.relu(x);
}

export type ActivationName = 'gelu' | 'gelu_pytorch_tanh' | 'gelu_new' | 'quick_gelu' | 'silu' | 'swish' | 'relu';

export function activation(name: string): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'gelu': return gelu;
    case 'gelu_pytorch_tanh':
    case 'gelu_new': return geluTanh;
    case 'quick_gelu': return quickGelu;
    case 'silu':
    case 'swish': return silu;
    case 'relu': return relu;
    default: throw new Error(`unknown activation '${name}' (known: gelu, gelu_pytorch_tanh, gelu_new, quick_gelu, silu, swish, relu)`);
  }
}
