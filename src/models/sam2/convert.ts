/**
 * Convert an official SAM2 / SAM2.1 checkpoint (.pt {"model": state_dict}, or safetensors with the
 * same keys) into a weights/sam2-... directory: config.json + model.safetensors with the image-path tensors.
 * The checkpoint is loaded into the model of the chosen size first, so every missing or
 * mis-shaped key (e.g. a checkpoint of another size) is reported at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../io/atomic.ts';
import { openCheckpoint } from '../../io/checkpoint.ts';
import { writeSafetensors } from '../../io/safetensors.ts';
import { SAM2_CONFIGS, type Sam2Config } from './config.ts';
import { Sam2Image } from './model.ts';
import { configForCheckpoint, loadSam2Weights } from './weights.ts';

export function convertSam2(opts: { from: string; out: string; config?: Sam2Config | string }): { config: Sam2Config; tensors: number; ignored: number } {
  let cfg: Sam2Config | null = null;
  if (typeof opts.config === 'string') {
    cfg = SAM2_CONFIGS[opts.config] ?? null;
    if (!cfg) throw new Error(`unknown SAM2 model '${opts.config}' (known: ${Object.keys(SAM2_CONFIGS).join(', ')})`);
  } else cfg = opts.config ?? configForCheckpoint(opts.from);
  if (!cfg) throw new Error(`${opts.from}: cannot tell the model size from the file name; pass --model (${Object.keys(SAM2_CONFIGS).join(', ')})`);
  const src = openCheckpoint(opts.from);
  const model = new Sam2Image(cfg);
  try {
    const rep = loadSam2Weights(model, src);
    fs.mkdirSync(opts.out, { recursive: true });
    const tensors = model.exportTensors();
    try {
      writeSafetensors(path.join(opts.out, 'model.safetensors'), tensors, { metadata: { format: 'pt', source: path.basename(opts.from) } });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    writeJsonAtomic(path.join(opts.out, 'config.json'), { model_type: 'dpad-sam2', ...cfg });
    return { config: cfg, tensors: tensors.size, ignored: rep.ignored.length };
  } finally {
    model.dispose();
    src.close();
  }
}
