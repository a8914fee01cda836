/**
 * Qwen2.5-VL config.json checks (issue 20): a missing vision_config is refused (it used to build a
 * 7B-size vision tower), and every field is type- and range-checked, naming the field.
 */
import './helpers/setup.ts';
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { QWEN2_5_VL_3B, qwenConfigFrom } from '../src/models/qwen2_5_vl/config.ts';
import { FIXTURES } from './helpers/setup.ts';

const tiny = JSON.parse(fs.readFileSync(`${FIXTURES}/qwen2_5_vl-tiny-a/config.json`, 'utf8')) as Record<string, unknown>;

function message(raw: Record<string, unknown>): string {
  try {
    qwenConfigFrom(raw, 'm/config.json');
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

test('a config without vision_config is refused', () => {
  const { vision_config: _, ...rest } = tiny;
  assert.is(message(rest), 'm/config.json: no vision_config object (a Qwen2.5-VL config.json has one; without it the vision tower would silently get 7B\'s size)');
});

test('bad field values are named', () => {
  const v = tiny.vision_config as Record<string, unknown>;
  assert.is(message({ ...tiny, num_hidden_layers: 2.5 }), 'm/config.json: num_hidden_layers must be a whole number >= 1, got 2.5');
  assert.is(message({ ...tiny, hidden_size: '64' }), 'm/config.json: hidden_size must be a whole number >= 1, got "64"');
  assert.is(message({ ...tiny, rms_norm_eps: 0 }), 'm/config.json: rms_norm_eps must be a number > 0, got 0');
  assert.is(message({ ...tiny, image_token_id: 10 ** 7 }), `m/config.json: image_token_id must be below vocab_size ${tiny.vocab_size}, got 10000000`);
  assert.is(message({ ...tiny, tie_word_embeddings: 'yes' }), 'm/config.json: tie_word_embeddings must be true or false, got "yes"');
  assert.is(message({ ...tiny, vision_config: { ...v, depth: 0 } }), 'm/config.json: vision_config.depth must be a whole number >= 1, got 0');
  assert.is(message({ ...tiny, vision_config: { ...v, fullatt_block_indexes: [9] } }), `m/config.json: vision_config.fullatt_block_indexes must be a list of block indexes below depth ${v.depth}, got [9]`);
  assert.is(message({ ...tiny, vision_config: { ...v, out_hidden_size: 7 } }), `m/config.json: vision_config.out_hidden_size 7 must equal hidden_size ${tiny.hidden_size} (the merger feeds the decoder)`);
});

test('the official sizes and the fixtures read', () => {
  assert.equal(qwenConfigFrom(tiny).vision_config.depth, (tiny.vision_config as { depth: number }).depth);
  const c = qwenConfigFrom({ ...QWEN2_5_VL_3B, model_type: 'qwen2_5_vl', rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] } } as unknown as Record<string, unknown>);
  assert.is(c.vision_config.out_hidden_size, 2048);
  assert.is(c.num_hidden_layers, 36);
});

test.run();
