/**
 * The policy's frame: the policy sees an image resized to a square view of `view` x `view` pixels
 * (840 for DPAD) and answers in that view's pixels. This file is where the two frames meet:
 * - toView: image -> the view the policy sees (bilinear; an image already view x view is used as is);
 * - boxToView: a box in image pixels -> the view's pixels (the evaluation's CLIP crop);
 * - answerInImage: a response's box and points -> image pixels, the released evaluation's
 *   round(int(v) * W / view) (prompt/answer.ts answerGeometry; not clamped to the image).
 */
import { resize, type ImageU8 } from '../io/resample.ts';
import { answerGeometry, type Box } from '../prompt/answer.ts';

/** An image of width x height as the policy sees it: a view x view square. */
export interface ViewFrame {
  view: number;
  width: number;
  height: number;
}

export function frameOf(image: { width: number; height: number }, view: number): ViewFrame {
  return { view, width: image.width, height: image.height };
}

/** The view x view image the policy sees (the image itself when it is already that size). */
export function toView(image: ImageU8, view: number): ImageU8 {
  return image.width === view && image.height === view ? image : resize(image, view, view, 'bilinear');
}

/**
 * A box [x1, y1, x2, y2) in image pixels as view pixels: the start floored, the end rounded, and
 * at least one pixel wide and high.
 */
export function boxToView(box: Box, f: ViewFrame): Box {
  const kx = f.view / f.width;
  const ky = f.view / f.height;
  const x1 = Math.floor(box[0] * kx);
  const y1 = Math.floor(box[1] * ky);
  return [x1, y1, Math.max(x1 + 1, Math.round(box[2] * kx)), Math.max(y1 + 1, Math.round(box[3] * ky))];
}

/** A response's box and points in image pixels (or the PyError of a response that does not parse). */
export function answerInImage(text: string, f: ViewFrame): ReturnType<typeof answerGeometry> {
  return answerGeometry(text, f.width, f.height, f.view);
}
