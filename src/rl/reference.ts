/** The frozen reference policy of the KL term: a copy of the policy's model at the start of training. */
import * as tf from '@tensorflow/tfjs-core';
import { Qwen2_5_VL } from '../models/qwen2_5_vl/model.ts';

/** A new model with the same config and a copy of every weight of `model` (the caller disposes it). */
export function referenceCopy(model: Qwen2_5_VL): Qwen2_5_VL {
  const reference = new Qwen2_5_VL(model.config);
  const ex = model.exportTensors();
  try {
    reference.load(ex);
  } finally {
    tf.dispose([...ex.values()]);
  }
  return reference;
}
