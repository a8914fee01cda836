/**
 * Locate examples of the policy warm start: "Where is the red ring?" (or the sample's own query,
 * "Where is the triangle above the striped triangle?") about one object of a world image,
 * answered with that object's box in the policy's view, `[x1, y1, x2, y2]`. Every coordinate
 * depends on the image, and the answer is a few tokens, so the decoder's whole loss is the
 * retrieval the DPAD answer needs (find the described object among the image tokens, read its
 * place), without a long response in which the text explains most tokens. The alignment stage
 * (pretrain_align.ts) starts with them: with reference responses and descriptions alone the
 * decoder learns to name the right object long before its coordinates depend on the image.
 */
import { captionOf, describe, minimalDescription, type WorldSample } from '../data/world/generator.ts';
import { maskBox } from '../data/world/render.ts';
import { chatPrompt } from '../models/qwen2_5_vl/processor.ts';
import { encodeImage, type Policy } from '../pipeline/policy.ts';
import type { WeightedExample } from './sft.ts';

export interface LocateItem {
  /** the user turn */
  query: string;
  /** the response, without <|im_end|> */
  answer: string;
  /** the box in view pixels */
  box: [number, number, number, number];
}

/**
 * The locate item of sample `s` numbered `k` (a seeded choice, so a run is reproducible). Items
 * cycle through three kinds: k mod 3 = 0 asks for the target by the sample's own query (an
 * attribute, relation or logic query, the retrieval the DPAD answer needs); 1 and 2 ask for object
 * floor(k / 3) mod n by its smallest singling-out description and by its full caption (the words the
 * think's final sentence uses). Null when the object has no singling-out description (an identical
 * twin) or no visible pixel.
 */
export function locateItem(s: WorldSample, k: number, view: number): LocateItem | null {
  const kind = k % 3;
  const i = kind === 0 ? s.target : Math.floor(k / 3) % s.objects.length;
  const o = s.objects[i];
  const attrs = minimalDescription(s.objects, i);
  if ((kind !== 0 && !attrs) || !s.masks[i].some(v => v)) return null;
  const W = s.image.width;
  const box = maskBox(s.masks[i], W, s.image.height).map(x => Math.round((x * view) / W)) as [number, number, number, number];
  const what = kind === 0 ? s.query : kind === 1 ? describe(o, attrs!) : captionOf(o);
  return { query: `Where is ${what}?`, answer: `[${box.join(', ')}]`, box };
}

/**
 * The locate item as a weighted example (weight 1 per response token, `<|im_end|>` last) with its
 * box, or null where locateItem is. The example owns its pixels.
 */
export function locateExample(policy: Policy, s: WorldSample, k: number): (WeightedExample & { box: LocateItem['box'] }) | null {
  const item = locateItem(s, k, policy.viewSize);
  if (!item) return null;
  const tok = policy.tokenizer;
  const e = encodeImage(policy, s.image);
  const resp = [...tok.encode(item.answer), tok.tokenId('<|im_end|>')];
  return { ids: tok.encode(chatPrompt(item.query, e.tokens)), resp, weights: new Float32Array(resp.length).fill(1), pixels: e.pixelValues, grid: e.grid, box: item.box };
}
