/**
 * The embedded world: seeded scenes of simple objects that differ in shape, colour, size, texture
 * and position, on varied backgrounds. Rasterised directly (no canvas), so a seed always gives the
 * same pixels on every machine.
 */
import seedrandom from 'seedrandom';
import type { ImageU8 } from '../../io/resample.ts';

export const SHAPES = ['circle', 'square', 'triangle', 'ring', 'diamond'] as const;
export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export const SIZES = ['small', 'large'] as const;
export const TEXTURES = ['solid', 'striped', 'dotted'] as const;

export type Shape = (typeof SHAPES)[number];
export type Color = (typeof COLORS)[number];
export type Size = (typeof SIZES)[number];
export type Texture = (typeof TEXTURES)[number];

/** shapes that count as round for logic queries */
export const ROUND: ReadonlySet<Shape> = new Set(['circle', 'ring']);

const RGB: Record<Color, [number, number, number]> = {
  red: [214, 40, 40], green: [46, 160, 67], blue: [38, 84, 214], yellow: [236, 201, 38], purple: [128, 60, 170], orange: [240, 128, 24],
};

export interface WorldObject {
  shape: Shape;
  color: Color;
  size: Size;
  texture: Texture;
  /** centre and half-extent in pixels */
  cx: number;
  cy: number;
  r: number;
}

export interface Scene {
  width: number;
  height: number;
  objects: WorldObject[];
  image: ImageU8;
  /** per object: binary mask (1 inside), width * height */
  masks: Uint8Array[];
}

function inside(o: WorldObject, x: number, y: number): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  switch (o.shape) {
    case 'circle': return dx * dx + dy * dy <= o.r * o.r;
    case 'ring': { const d = dx * dx + dy * dy; return d <= o.r * o.r && d >= (o.r * 0.55) ** 2; }
    case 'square': return Math.abs(dx) <= o.r * 0.85 && Math.abs(dy) <= o.r * 0.85;
    case 'diamond': return Math.abs(dx) + Math.abs(dy) <= o.r;
    case 'triangle': {
      // apex up: y from cy - r to cy + 0.8r, half-width grows linearly
      const top = o.cy - o.r;
      const bottom = o.cy + o.r * 0.8;
      if (y < top || y > bottom) return false;
      const t = (y - top) / (bottom - top);
      return Math.abs(dx) <= t * o.r;
    }
  }
}

function textured(o: WorldObject, x: number, y: number): boolean {
  if (o.texture === 'striped') return Math.floor((x + y) / 4) % 2 === 0;
  if (o.texture === 'dotted') return (x % 6) < 3 && (y % 6) < 3;
  return true;
}

/** the span, in levels of 0-255, of the background's fixed left-to-right red and top-to-bottom green ramps */
export const BG_PLACE = 48;

/** Draw a scene with the given objects. */
export function renderScene(width: number, height: number, objects: WorldObject[], seed: string): Scene {
  const rng = seedrandom(`bg:${seed}`);
  const base = [60 + rng() * 150, 60 + rng() * 150, 60 + rng() * 150];
  const grad = [(rng() - 0.5) * 40, (rng() - 0.5) * 40, (rng() - 0.5) * 40];
  const noise = 6 + rng() * 10;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const t = (x + y) / (width + height);
    // the same in every scene: red rises to the right, green downwards, so a patch of background says
    // where it is (its colour against the scene's mean); a vision tower with rotary positions only
    // cannot tell absolute position otherwise, and the decoder's M-RoPE reads it only with difficulty
    const place = [BG_PLACE * (x / width - 0.5), BG_PLACE * (y / height - 0.5), 0];
    for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c] + grad[c] * t + place[c] + (rng() - 0.5) * noise)));
  }
  const masks = objects.map(() => new Uint8Array(width * height));
  objects.forEach((o, k) => {
    const col = RGB[o.color];
    const x0 = Math.max(0, Math.floor(o.cx - o.r - 1));
    const x1 = Math.min(width - 1, Math.ceil(o.cx + o.r + 1));
    const y0 = Math.max(0, Math.floor(o.cy - o.r - 1));
    const y1 = Math.min(height - 1, Math.ceil(o.cy + o.r + 1));
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
      if (!inside(o, x + 0.5, y + 0.5)) continue;
      masks[k][y * width + x] = 1;
      const on = textured(o, x, y);
      for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = on ? col[c] : Math.round(col[c] * 0.45 + 255 * 0.55);
    }
  });
  return { width, height, objects, image: { width, height, channels: 3, data }, masks };
}

/** Tight box [x1, y1, x2, y2] (inclusive pixel coordinates) of a mask. */
export function maskBox(mask: Uint8Array, width: number, height: number): [number, number, number, number] {
  let x1 = width, y1 = height, x2 = -1, y2 = -1;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (mask[y * width + x]) {
    if (x < x1) x1 = x; if (x > x2) x2 = x; if (y < y1) y1 = y; if (y > y2) y2 = y;
  }
  return [x1, y1, x2, y2];
}

/**
 * Centres of the two largest inscribed circles: the pixel farthest from the background, then the
 * farthest among pixels outside the first circle (a chamfer distance transform).
 */
export function inscribedPoints(mask: Uint8Array, width: number, height: number): [[number, number], [number, number]] {
  const INF = 1e9;
  const d = new Float64Array(width * height);
  for (let i = 0; i < d.length; i++) d[i] = mask[i] ? INF : 0;
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= width || y >= height ? 0 : d[y * width + x]);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const i = y * width + x;
    if (!d[i]) continue;
    d[i] = Math.min(d[i], at(x - 1, y) + 1, at(x, y - 1) + 1, at(x - 1, y - 1) + Math.SQRT2, at(x + 1, y - 1) + Math.SQRT2);
  }
  for (let y = height - 1; y >= 0; y--) for (let x = width - 1; x >= 0; x--) {
    const i = y * width + x;
    if (!d[i]) continue;
    d[i] = Math.min(d[i], at(x + 1, y) + 1, at(x, y + 1) + 1, at(x + 1, y + 1) + Math.SQRT2, at(x - 1, y + 1) + Math.SQRT2);
  }
  let best = -1, bi = 0;
  for (let i = 0; i < d.length; i++) if (d[i] > best) { best = d[i]; bi = i; }
  const p1: [number, number] = [bi % width, Math.floor(bi / width)];
  let best2 = -1, bj = bi;
  for (let i = 0; i < d.length; i++) {
    if (!mask[i]) continue;
    const x = i % width, y = Math.floor(i / width);
    if ((x - p1[0]) ** 2 + (y - p1[1]) ** 2 <= best * best) continue;
    if (d[i] > best2) { best2 = d[i]; bj = i; }
  }
  const p2: [number, number] = [bj % width, Math.floor(bj / width)];
  return [p1, p2];
}
