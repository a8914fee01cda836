/**
 * Dense descriptions of world images: every object, in reading order (rows of a 3 x 3 grid, then
 * left to right), with its caption, its place and its box in the policy's view. The alignment
 * stage of the policy warm start (pretrain_align.ts) trains the decoder on them, the world's
 * counterpart of a VLM's caption-alignment stage: every token after the count depends on the image.
 */
import { captionOf, position, type WorldSample } from '../data/world/generator.ts';
import { maskBox } from '../data/world/render.ts';

/** the user turn of a description example */
export const DESCRIBE_PROMPT = 'List the objects.';

/** "There are 3 objects. It is a small red ring in the top left at [4, 6, 20, 22]. It is ..." */
export function describeScene(s: WorldSample, view: number): string {
  const W = s.image.width;
  const k = view / W;
  const row = (cy: number) => Math.floor((cy / W) * 3);
  const objs = s.objects
    .map((o, i) => ({ o, box: maskBox(s.masks[i], W, s.image.height).map(x => Math.round(x * k)) }))
    .sort((a, b) => row(a.o.cy) - row(b.o.cy) || a.o.cx - b.o.cx);
  const items = objs.map(({ o, box }) => `It is ${captionOf(o)} in the ${position(o, W)} at [${box.join(', ')}].`);
  return `There are ${objs.length} objects. ${items.join(' ')}`;
}
