import './helpers/setup.ts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { expandImagePads, renderChat, type ChatPart } from '../src/models/qwen2_5_vl/chat.ts';
import { chatPrompt, processChat } from '../src/models/qwen2_5_vl/processor.ts';
import { PolicyTokenizer, parseMerges, type AddedTokenSpec } from '../src/models/qwen2_5_vl/tokenizer.ts';
import { FIXTURES } from './helpers/setup.ts';

const T = path.join(FIXTURES, 'qwen2_5_vl-tokenizer');
const DEMO = new URL('../weights/demo/policy/', import.meta.url).pathname;
const fixture = JSON.parse(fs.readFileSync(path.join(T, 'fixture.json'), 'utf8'));
const added = fixture.config.added_tokens as AddedTokenSpec[];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpad-qwen-tok-'));
let qwen: PolicyTokenizer | null = null;
const tok = () => (qwen ??= PolicyTokenizer.fromFiles(path.join(T, 'vocab.json'), path.join(T, 'merges.txt'), added));
const VC = { patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 };

test('vocab.json + merges.txt + added tokens: the Qwen2Tokenizer ids of the fixture texts', () => {
  const t = SafetensorsFile.open(path.join(T, 'tensors.safetensors'));
  let n = 0;
  for (const c of fixture.cases) {
    if (c.entry !== 'qwen2_5_vl.tokenize') continue;
    const want = Array.from(t.read(c.outputs.input_ids.tensor).data);
    assert.equal(tok().encode(c.inputs.text), want, c.name);
    n++;
  }
  t.close();
  assert.ok(n >= 8);
  // the well-known ids of the Qwen chat header; nothing is added around the text
  assert.equal(tok().encode('<|im_start|>system\n'), [151644, 8948, 198]);
  assert.equal(tok().encode('Hello world'), [9707, 1879]);
  assert.equal(tok().encode(''), []);
});

test('NFC first, added tokens matched before the regex, digits one by one, whitespace runs', () => {
  const t = tok();
  assert.equal(t.encode('Cafe\u0301'), t.encode('Caf\u00e9'), 'decomposed and composed text tokenize alike');
  assert.equal(t.tokens('2024'), ['2', '0', '2', '4']);
  assert.equal(t.tokens('a<|im_end|>b'), ['a', '<|im_end|>', 'b']);
  assert.equal(t.tokens('<|im_start|><|im_start|>'), ['<|im_start|>', '<|im_start|>']);
  assert.equal(t.tokens('<|im_sta'), ['<', '|', 'im', '_sta']);
  assert.equal(t.tokens('a   b'), ['a', 'ĠĠ', 'Ġb']);
  assert.equal(t.tokenId('<|image_pad|>'), 151655);
  assert.equal(t.tokenId('<tool_call>'), 151657);
  // decoding: byte-level back to text, special tokens skipped on request, spaces left alone
  const text = 'Tokyo 東京 , ok <|im_end|>';
  assert.is(t.decode(t.encode(text), false), text);
  assert.is(t.decode(t.encode(text)), 'Tokyo 東京 , ok ');
  assert.is(t.decode([]), '');
});

test('load(dir) reads vocab.json + merges.txt with tokenizer_config.json added_tokens_decoder, and tokenizer.json still', () => {
  const dir = path.join(tmp, 'slow');
  fs.mkdirSync(dir);
  fs.symlinkSync(path.join(T, 'vocab.json'), path.join(dir, 'vocab.json'));
  fs.symlinkSync(path.join(T, 'merges.txt'), path.join(dir, 'merges.txt'));
  const dec = Object.fromEntries(added.map(a => [String(a.id), { content: a.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: a.special }]));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ added_tokens_decoder: dec, eos_token: '<|im_end|>' }));
  const t = PolicyTokenizer.load(dir);
  const text = '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Where is it?<|im_end|>\n';
  assert.equal(t.encode(text), tok().encode(text));
  assert.is(t.tokenId('<|im_end|>'), 151645);
  // the demo policy ships tokenizer.json: that layout keeps working
  const demo = PolicyTokenizer.load(DEMO);
  assert.is(demo.tokenId('<|image_pad|>'), 903);
  assert.is(demo.decode(demo.encode('the red box'), false), 'the red box');
});

test('a toy vocabulary: merges applied by rank, the version line skipped', () => {
  const merges = parseMerges('#version: 0.2\na b\nab c\n\nb c\n');
  assert.equal(merges, [['a', 'b'], ['ab', 'c'], ['b', 'c']]);
  const vocab = { a: 0, b: 1, c: 2, ab: 3, abc: 4, bc: 5, 'Ġ': 6, '<x>': 7 };
  const t = PolicyTokenizer.fromVocab(vocab, merges, [{ id: 7, content: '<x>', special: true }]);
  assert.equal(t.tokens('abc'), ['abc']);
  assert.equal(t.tokens('bc'), ['bc']);
  assert.equal(t.encode('abc<x>cab'), [4, 7, 2, 3]);
});

test('bad input: malformed merges, missing files, added token without an id', () => {
  assert.throws(() => parseMerges('#version: 0.2\na b c\n', 'm.txt'), /^m\.txt: line 2 is not a pair of tokens: "a b c"$/);
  assert.throws(() => PolicyTokenizer.fromFiles(path.join(tmp, 'none.json'), path.join(T, 'merges.txt')), new RegExp(`^${tmp}/none\\.json: cannot be read`));
  const bad = path.join(tmp, 'bad.json');
  fs.writeFileSync(bad, '[1, 2]');
  assert.throws(() => PolicyTokenizer.fromFiles(bad, path.join(T, 'merges.txt')), new RegExp(`^${bad}: not a \\{token: id\\} object$`));
  assert.throws(() => PolicyTokenizer.fromVocab({ a: 0 }, [], [{ content: '<y>' } as AddedTokenSpec]), /^<memory>: added token "<y>" has no valid id \(undefined\)$/);
});

test('chat template: default system turn, several turns, string content, generation prompt on and off', () => {
  const msgs = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: [{ type: 'text', text: 'Look: ' }, { type: 'image' }] },
  ];
  const head = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n';
  const body = '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nLook: <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n';
  assert.is(renderChat(msgs), head + body);
  assert.is(renderChat(msgs, { addGenerationPrompt: true }), head + body + '<|im_start|>assistant\n');
  // a system turn first replaces the default; a later system turn does not suppress it
  assert.is(renderChat([{ role: 'system', content: 'S' }, { role: 'user', content: 'q' }]), '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n');
  assert.is(renderChat([{ role: 'user', content: 'q' }, { role: 'system', content: 'S' }]), head + '<|im_start|>user\nq<|im_end|>\n<|im_start|>system\nS<|im_end|>\n');
  assert.is(renderChat([]), '');
  assert.is(renderChat([], { addGenerationPrompt: true }), '<|im_start|>assistant\n');
});

test('chat template: image parts by type or key, videos, vision ids, parts without text, list content of a system turn', () => {
  const parts = [{ image: 'a.png' }, { type: 'text', text: 'x' }, { image_url: 'u' }, { type: 'video' }, { type: 'other' }, { video: 'v.mp4' }];
  const want = '<|vision_start|><|image_pad|><|vision_end|>x<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>';
  assert.is(renderChat([{ role: 'system', content: [{ type: 'text', text: 'S' }] }, { role: 'user', content: parts }]), `<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n${want}<|im_end|>\n`);
  const ids = renderChat([{ role: 'user', content: [{ type: 'image' }, { type: 'video' }, { type: 'image' }] }], { addVisionId: true });
  assert.match(ids, /user\nPicture 1: <\|vision_start\|><\|image_pad\|><\|vision_end\|>Video 1: <\|vision_start\|><\|video_pad\|><\|vision_end\|>Picture 2: <\|vision_start\|>/);
  assert.throws(() => renderChat([{ role: 'user', content: 5 as unknown as string }]), /^qwen chat template: messages\[0\]\.content is neither a string nor a list$/);
  assert.throws(() => renderChat([{ role: 'user', content: ['x' as unknown as ChatPart] }]), /^qwen chat template: messages\[0\]\.content\[0\] is not an object$/);
});

test('image pads expanded in order; chatPrompt is the template with one image', () => {
  assert.is(expandImagePads('a<|image_pad|>b<|image_pad|>c', [2, 1]), 'a<|image_pad|><|image_pad|>b<|image_pad|>c');
  assert.throws(() => expandImagePads('<|image_pad|><|image_pad|>', [3]), /^qwen processor: the text has 2 <\|image_pad\|> but only 1 image\(s\) were given$/);
  const one = renderChat([{ role: 'system', content: 'S' }, { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'q' }] }], { addGenerationPrompt: true });
  assert.is(chatPrompt('q', 3, 'S'), expandImagePads(one, [3]));
  assert.is(chatPrompt('q', null, 'S'), '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n');
});

test('processChat: two images anywhere in the content, each pad expanded to t*h*w/4, pixel values stacked', () => {
  const img = (w: number, h: number) => ({ width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).fill(128) });
  const before = tf.memory().numTensors;
  const msgs = [{ role: 'user', content: [{ type: 'text', text: 'A ' }, { type: 'image' }, { type: 'text', text: ' B ' }, { type: 'image' }] }];
  const r = processChat(tok(), msgs, [img(56, 56), img(84, 56)], VC, { addGenerationPrompt: false });
  assert.equal(r.grids, [[1, 4, 4], [1, 4, 6]]);
  assert.equal(r.pixelValues!.shape, [16 + 24, 3 * 2 * 14 * 14]);
  const pads = r.ids.filter(i => i === 151655).length;
  assert.is(pads, 4 + 6);
  const first = r.ids.indexOf(151655);
  assert.equal(r.ids.slice(first - 1, first + 5), [151652, 151655, 151655, 151655, 151655, 151653]);
  assert.is(r.ids[r.ids.length - 1], 198, 'ends on the newline after <|im_end|>');
  r.pixelValues!.dispose();
  assert.throws(() => processChat(tok(), msgs, [img(56, 56)], VC), /^qwen processor: the text has 2 <\|image_pad\|> but only 1 image\(s\) were given$/);
  assert.is(tf.memory().numTensors, before, 'nothing leaks, also on the error path');
  const none = processChat(tok(), [{ role: 'user', content: 'hi' }], [], VC, { addGenerationPrompt: true });
  assert.is(none.pixelValues, null);
  assert.equal(none.grids, []);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
