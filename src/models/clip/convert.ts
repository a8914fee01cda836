/**
 * Convert a CLIP checkpoint (HF openai/clip-vit-base-patch32 model directory, or an OpenAI-named
 * state dict, whose configuration may be read off its shapes) into the project layout:
 * config.json + model.safetensors (OpenAI names) + tokenizer files.
 * Every key and shape is checked by loading into the model first; all problems are reported at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../io/atomic.ts';
import { openCheckpoint } from '../../io/checkpoint.ts';
import { writeSafetensors } from '../../io/safetensors.ts';
import { clipConfigFrom, type ClipConfig } from './config.ts';
import { ClipModel } from './model.ts';
import { detectLayout, loadClipWeights, resolveClipConfig, type ClipLayout } from './weights.ts';

export interface ConvertClipOptions {
  /** HF model directory, or a .safetensors / .bin / .pt file */
  from: string;
  out: string;
  /** a config.json path or object; default: config.json beside the weights, else (OpenAI layout) read off the weight shapes */
  config?: string | Record<string, unknown>;
  layout?: ClipLayout;
  /** OpenAI's bpe_simple_vocab_16e6.txt.gz, when the source has no HF tokenizer files */
  vocab?: string;
}

export function convertClip(opts: ConvertClipOptions): { config: ClipConfig; tensors: number; layout: ClipLayout } {
  if (!fs.existsSync(opts.from)) throw new Error(`${opts.from}: no such CLIP model directory or weights file`);
  const srcDir = fs.statSync(opts.from).isDirectory() ? opts.from : path.dirname(opts.from);
  let config: ClipConfig;
  if (typeof opts.config === 'string') {
    if (!fs.existsSync(opts.config)) throw new Error(`${opts.config}: no such config file`);
    config = clipConfigFrom(JSON.parse(fs.readFileSync(opts.config, 'utf8')), opts.config);
  } else config = resolveClipConfig(opts.from, opts.config);
  const src = openCheckpoint(opts.from);
  const layout = opts.layout ?? detectLayout(src);
  const model = new ClipModel(config);
  try {
    loadClipWeights(model, src, layout);
    fs.mkdirSync(opts.out, { recursive: true });
    const params = model.exportTensors();
    try {
      writeSafetensors(path.join(opts.out, 'model.safetensors'), params, { metadata: { format: 'dpad', model: 'clip', source: path.basename(opts.from) } });
    } finally {
      for (const t of params.values()) t.dispose();
    }
    writeJsonAtomic(path.join(opts.out, 'config.json'), { model_type: 'dpad-clip', ...config });
    const copy = (f: string) => fs.copyFileSync(f, path.join(opts.out, path.basename(f)));
    if (opts.vocab) copy(opts.vocab);
    for (const f of ['tokenizer.json', 'vocab.json', 'merges.txt', 'bpe_simple_vocab_16e6.txt.gz']) {
      const p = path.join(srcDir, f);
      if (fs.existsSync(p) && path.resolve(p) !== path.resolve(path.join(opts.out, f))) copy(p);
    }
    return { config, tensors: params.size, layout };
  } finally {
    model.dispose();
    src.close();
  }
}
