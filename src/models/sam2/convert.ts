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
import { readSam2Config, SAM2_CONFIGS, type Sam2Config } from './config.ts';
import { Sam2Image } from './model.ts';
import { configFor, loadSam2Weights } from './weights.ts';

/**
 * `config`: a Sam2Config, a released model's name (sam2.1_hiera_l, ...), or a config file (the
 * official hydra .yaml, or .json); absent, it is read off the weight shapes, then the file name.
 */
export function convertSam2(opts: { from: string; out: string; config?: Sam2Config | string }): { config: Sam2Config; tensors: number; ignored: number } {
  const src = openCheckpoint(opts.from);
  try {
    let cfg: Sam2Config;
    if (typeof opts.config === 'string') {
      if (/\.(ya?ml|json)$/i.test(opts.config)) cfg = readSam2Config(opts.config);
      else {
        const named = SAM2_CONFIGS[opts.config];
        if (!named) throw new Error(`unknown SAM2 model '${opts.config}' (known: ${Object.keys(SAM2_CONFIGS).join(', ')}, or a config .yaml / .json)`);
        cfg = named;
      }
    } else cfg = opts.config ?? configFor(src, opts.from);
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
    }
  } finally {
    src.close();
  }
}
