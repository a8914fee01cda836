import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TensorSource } from '../src/io/source.ts';
import { readSam2Config, sam2ConfigFrom, SAM2_HIERA_B_PLUS, SAM2_HIERA_L, SAM2_HIERA_T, type Sam2Config } from '../src/models/sam2/config.ts';
import { Sam2Image } from '../src/models/sam2/model.ts';
import { sam2Preprocess } from '../src/models/sam2/preprocess.ts';
import { configForWeights, loadSam2 } from '../src/models/sam2/weights.ts';
import { parseYaml } from '../src/models/sam2/yaml.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-sam2cfg-'));

// The image-path part of a hydra model config, laid out as sam2's configs/sam2.1/*.yaml are (written here).
const yamlFor = (trunk: string, channels: string, extra = '') => `# @package _global_

model:
  _target_: sam2.modeling.sam2_base.SAM2Base
  image_encoder:
    _target_: sam2.modeling.backbones.image_encoder.ImageEncoder
    scalp: 1
    trunk:
      _target_: sam2.modeling.backbones.hieradet.Hiera
${trunk}
    neck:
      _target_: sam2.modeling.backbones.image_encoder.FpnNeck
      position_encoding:
        _target_: sam2.modeling.position_encoding.PositionEmbeddingSine
        num_pos_feats: 256
        normalize: true
        scale: null
        temperature: 10000
      d_model: 256
      backbone_channel_list: ${channels}
      fpn_top_down_levels: [2, 3]  # levels 0 and 1 use the backbone features
      fpn_interp_model: nearest
  memory_encoder:
      out_dim: 64
      fuser:
        layer:
          layer_scale_init_value: 1e-6
          use_dwconv: True  # video only
  image_size: 1024
  directly_add_no_mem_embed: true
  use_high_res_features_in_sam: true
  multimask_output_in_sam: true
  iou_prediction_use_sigmoid: True
  pred_obj_scores: true
  pred_obj_scores_mlp: true
  compile_image_encoder: False
${extra}`;

const L = yamlFor(`      embed_dim: 144
      num_heads: 2
      stages: [2, 6, 36, 4]
      global_att_blocks: [23, 33, 43]
      window_pos_embed_bkg_spatial_size: [7, 7]
      window_spec: [8, 4, 16, 8]`, '[1152, 576, 288, 144]');

const same = (a: Sam2Config, b: Sam2Config) => assert.equal(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify({ ...b, neck: { fuse_type: 'sum', ...b.neck } })));

test('yaml: the subset hydra configs use, and refusals with the line', () => {
  const v = parseYaml("a: [1, 2.5, 'x y', [3]]  # c\nb: {c: 1e-6, d: null, e: True}\nl:\n  - 1\n  - k: v\n    j: -2\ns: \"q # not a comment\"\nn: ~\n", 'f.yaml');
  assert.equal(v, { a: [1, 2.5, 'x y', [3]], b: { c: 1e-6, d: null, e: true }, l: [1, { k: 'v', j: -2 }], s: 'q # not a comment', n: null });
  assert.throws(() => parseYaml('a: 1\na: 2\n', 'f.yaml'), /^f\.yaml:2: duplicate key a$/);
  assert.throws(() => parseYaml('a:\n\tb: 1\n', 'f.yaml'), /f\.yaml:2: tabs are not allowed in YAML indentation/);
  assert.throws(() => parseYaml('a: &x 1\n', 'f.yaml'), /f\.yaml:1: YAML feature not supported in a model config: &x 1/);
  assert.throws(() => parseYaml('a: |\n  text\n', 'f.yaml'), /f\.yaml:1: YAML feature not supported in a model config: \|/);
  assert.throws(() => parseYaml('a: [1, 2\n', 'f.yaml'), /f\.yaml:1: expected ',' or '\]' in \[1, 2/);
});

test('hydra tree: the official yaml reads to the released sizes; defaults are the constructors\'', () => {
  const file = path.join(tmp, 'sam2.1_hiera_l.yaml');
  fs.writeFileSync(file, L);
  same(readSam2Config(file), SAM2_HIERA_L);
  // b+ writes no stages / windows / global blocks: Hiera's defaults
  same(sam2ConfigFrom(parseYaml(yamlFor('      embed_dim: 112\n      num_heads: 2', '[896, 448, 224, 112]'))), SAM2_HIERA_B_PLUS);
  // tiny writes no window_spec
  const t = sam2ConfigFrom(parseYaml(yamlFor('      embed_dim: 96\n      num_heads: 1\n      stages: [1, 2, 7, 2]\n      global_att_blocks: [5, 7, 9]\n      window_pos_embed_bkg_spatial_size: [7, 7]', '[768, 384, 192, 96]')));
  same(t, SAM2_HIERA_T);
  // build_sam2 adds the dynamic-multimask post-processing unless told not to; written values are kept
  const tree = parseYaml(L) as { model: Record<string, unknown> };
  assert.is(sam2ConfigFrom(tree, 'x', { applyPostprocessing: false }).sam.dynamic_multimask_via_stability, false);
  const kept = sam2ConfigFrom({ model: { ...tree.model, sam_mask_decoder_extra_args: { dynamic_multimask_via_stability: false, dynamic_multimask_stability_thresh: 0.9 } } });
  assert.is(kept.sam.dynamic_multimask_via_stability, false);
  assert.is(kept.sam.dynamic_multimask_stability_thresh, 0.9);
  // SAM2Base / ImageEncoder / FpnNeck defaults where the tree is silent
  const bare = sam2ConfigFrom({ image_encoder: { trunk: { embed_dim: 8, stages: [1, 1, 1, 1], global_att_blocks: [] }, neck: { d_model: 32, backbone_channel_list: [64, 32, 16, 8] } } });
  assert.is(bare.image_size, 512);
  assert.is(bare.neck.scalp, 0);
  assert.equal(bare.neck.fpn_top_down_levels, [0, 1, 2, 3]);
  assert.is(bare.neck.fpn_interp_model, 'bilinear');
  assert.equal([bare.sam.use_high_res_features_in_sam, bare.sam.pred_obj_scores, bare.sam.iou_prediction_use_sigmoid, bare.sam.directly_add_no_mem_embed], [false, false, false, false]);
  assert.equal(bare.trunk.window_spec, [8, 4, 14, 7]);
});

test('hydra tree: invalid values of used fields name the field', () => {
  const tree = parseYaml(L) as { model: { image_encoder: { trunk: Record<string, unknown>; neck: Record<string, unknown> } } & Record<string, unknown> };
  const withTrunk = (t: Record<string, unknown>) => ({ model: { ...tree.model, image_encoder: { ...tree.model.image_encoder, trunk: { ...tree.model.image_encoder.trunk, ...t } } } });
  const withNeck = (n: Record<string, unknown>) => ({ model: { ...tree.model, image_encoder: { ...tree.model.image_encoder, neck: { ...tree.model.image_encoder.neck, ...n } } } });
  const bad = (raw: unknown, msg: string) => assert.throws(() => sam2ConfigFrom(raw, 'c.yaml'), (e: Error) => e.message === msg || assert.unreachable(e.message));
  bad(withTrunk({ embed_dims: 3 }), 'c.yaml: model.image_encoder.trunk.embed_dims: unknown field (known: _target_, embed_dim, num_heads, drop_path_rate, q_pool, q_stride, stages, dim_mul, head_mul, window_pos_embed_bkg_spatial_size, window_spec, global_att_blocks, weights_path, return_interm_layers)');
  bad(withTrunk({ window_spec: [8, 4, 16] }), 'c.yaml: model.image_encoder.trunk.window_spec: expected a list of 4 integers >= 0, got [8,4,16]');
  bad(withTrunk({ embed_dim: 14.5 }), 'c.yaml: model.image_encoder.trunk.embed_dim: expected an integer >= 1, got 14.5');
  bad(withTrunk({ q_stride: [4, 4] }), 'c.yaml: model.image_encoder.trunk.q_stride: expected [2,2] (the only value supported), got [4,4]');
  bad(withTrunk({ _target_: 'my.Backbone' }), 'c.yaml: model.image_encoder.trunk._target_: expected hieradet.Hiera (the image path supports no other), got "my.Backbone"');
  bad(withNeck({ fpn_interp_model: 'area' }), "c.yaml: model.image_encoder.neck.fpn_interp_model: expected one of 'nearest', 'bilinear', 'bicubic' (others are not supported), got \"area\"");
  bad(withNeck({ kernel_size: 3 }), 'c.yaml: model.image_encoder.neck.kernel_size: expected 1 (the only value supported), got 3');
  bad(withNeck({ d_model: 40 }), 'c.yaml: model.image_encoder.neck.d_model: 40 must be a multiple of 16 (8 attention heads over d_model / 2)');
  bad({ model: { ...tree.model, use_high_res_features_in_sam: 'yes' } }, 'c.yaml: model.use_high_res_features_in_sam: expected true or false, got "yes"');
  bad({ model: { ...tree.model, image_size: 1000 } }, 'c.yaml: model.image_size 1000 must be a multiple of 32');
  bad({ model: { ...tree.model, sam_mask_decoder_extra_args: { dynamic_multimask_stability_delta: 'x' } } }, 'c.yaml: model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta: expected a number, got "x"');
  bad({ model: { ...tree.model, sam_mask_decoder_extra_args: { iou_head_depth: 4 } } }, 'c.yaml: model.sam_mask_decoder_extra_args.iou_head_depth: unknown field (known: dynamic_multimask_via_stability, dynamic_multimask_stability_delta, dynamic_multimask_stability_thresh)');
  bad({ model: { ...tree.model, image_encoder: { ...tree.model.image_encoder, scalp: 0 } } }, 'c.yaml: 4 FPN level(s) after scalp 0, but use_high_res_features_in_sam needs exactly 3');
  bad({ model: { _target_: 'x' } }, 'c.yaml: model.image_encoder is missing: not a SAM2 hydra config');
  bad({ image_size: 1024 }, 'c.yaml: not a SAM2 config: expected the hydra tree (model.image_encoder.trunk / neck, as in sam2\'s configs/*.yaml) or the flat {image_size, trunk, neck}');
  bad({ ...SAM2_HIERA_T, trunk: { ...SAM2_HIERA_T.trunk, stages: [1, 2] } }, 'c.yaml: trunk.window_spec: expected a list of 2 integers >= 0, got [8,4,14,7]');
});

test('flat form: the demo weights still load, and the shipped config round-trips', () => {
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'weights', 'demo', 'sam2');
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const c = sam2ConfigFrom(raw);
  assert.is(c.image_size, raw.image_size);
  assert.equal(c.neck.backbone_channel_list, raw.neck.backbone_channel_list);
  const m = loadSam2(dir);
  assert.is(m.config.trunk.embed_dim, raw.trunk.embed_dim);
  m.dispose();
});

/** a TensorSource with only shapes: the keys a checkpoint of `c` has in its image encoder */
function shapeSource(c: Sam2Config): TensorSource {
  const meta = new Map<string, number[]>();
  const t = c.trunk;
  meta.set('image_encoder.trunk.patch_embed.proj.weight', [t.embed_dim, 3, 7, 7]);
  meta.set('image_encoder.trunk.pos_embed', [1, t.embed_dim, ...t.window_pos_embed_bkg_spatial_size]);
  meta.set('image_encoder.neck.convs.0.conv.weight', [c.neck.d_model, c.neck.backbone_channel_list[0], 1, 1]);
  let i = 0;
  t.stages.forEach((n, s) => {
    for (let k = 0; k < n; k++, i++) {
      meta.set(`image_encoder.trunk.blocks.${i}.attn.qkv.weight`, [1, 1]);
      if (s > 0 && k === 0) meta.set(`image_encoder.trunk.blocks.${i}.proj.weight`, [1, 1]);
    }
  });
  return {
    path: 'mem', keys: () => [...meta.keys()], has: k => meta.has(k),
    meta: k => ({ dtype: 'F32', shape: meta.get(k)! }) as ReturnType<TensorSource['meta']>,
    read: () => { throw new Error('shapes only'); }, close: () => {},
  };
}

test('the model size is read off the weight shapes', () => {
  assert.is(configForWeights(shapeSource(SAM2_HIERA_L)), SAM2_HIERA_L);
  assert.is(configForWeights(shapeSource(SAM2_HIERA_B_PLUS)), SAM2_HIERA_B_PLUS);
  assert.is(configForWeights(shapeSource(SAM2_HIERA_T)), SAM2_HIERA_T);
  assert.is(configForWeights(shapeSource({ ...SAM2_HIERA_T, trunk: { ...SAM2_HIERA_T.trunk, stages: [1, 2, 9, 2] } })), null);
});

test('without high-res features or object scores the image path builds, encodes and decodes as SAM2Base does', () => {
  const c = sam2ConfigFrom({
    image_size: 64, use_high_res_features_in_sam: false, pred_obj_scores: false,
    image_encoder: { scalp: 1, trunk: { embed_dim: 8, num_heads: 1, stages: [1, 1, 1, 1], global_att_blocks: [], window_pos_embed_bkg_spatial_size: [2, 2], window_spec: [4, 2, 2, 1] }, neck: { d_model: 32, backbone_channel_list: [64, 32, 16, 8], fpn_interp_model: 'nearest', fuse_type: 'avg' } },
  });
  const m = new Sam2Image(c);
  const names = [...m.trainableParameters()].map(([n]) => n);
  assert.ok(!names.some(n => n.includes('conv_s0') || n.includes('obj_score')), 'no conv_s0 / conv_s1 / obj_score_token');
  const px = tf.randomNormal([1, 3, 64, 64], 0, 1, 'float32', 1) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const f = m.encodeImage(px);
  assert.equal(f.imageEmbed.shape, [1, 32, 4, 4]);
  const out = m.decode(f, { boxes: tf.tensor2d([[4, 4, 40, 50]]) }, true);
  assert.equal(out.lowResMasks.shape, [1, 3, 16, 16]);
  tf.dispose([f.imageEmbed, f.highRes0, f.highRes1, out.lowResMasks, out.iouPredictions, out.objectScoreLogits]);
  assert.ok(tf.memory().numTensors <= before + 1, 'nothing kept but the box');
  px.dispose();
  m.dispose();
});

test('sam2.preprocess: /255, antialiased bilinear as torch (support widened by the scale), ImageNet normalisation', () => {
  // one row of 4 grey levels -> 2: output 0 has centre 1, support 2, taps 0..2 with weights 0.75, 0.75, 0.25
  const v = [0, 40, 80, 200];
  const data = new Uint8Array(4 * 4 * 3);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) for (let ch = 0; ch < 3; ch++) data[(y * 4 + x) * 3 + ch] = v[x];
  const px = sam2Preprocess({ width: 4, height: 4, channels: 3, data }, 2);
  const got = px.arraySync()[0];
  px.dispose();
  const o0 = (0.75 * v[0] + 0.75 * v[1] + 0.25 * v[2]) / 1.75 / 255;
  const o1 = (0.25 * v[1] + 0.75 * v[2] + 0.75 * v[3]) / 1.75 / 255;
  assert.ok(Math.abs(got[0][0][0] - (o0 - 0.485) / 0.229) < 1e-5, `${got[0][0][0]}`);
  assert.ok(Math.abs(got[2][1][1] - (o1 - 0.406) / 0.225) < 1e-5, `${got[2][1][1]}`);
  assert.throws(() => sam2Preprocess({ width: 2, height: 2, channels: 1, data: new Uint8Array(4) }, 8), /sam2 preprocess: the image has 1 channel\(s\); SAM2 takes RGB/);
  assert.throws(() => sam2Preprocess({ width: 2, height: 2, channels: 3, data: new Uint8Array(4) }, 8), /sam2 preprocess: 4 bytes for a 2x2x3 image/);
});

test.run();
