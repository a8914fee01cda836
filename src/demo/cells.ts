/**
 * Dense per-cell targets for pretraining the policy's vision tower on the world: one cell per
 * merged image token (the policy sees a gh x gw grid of them, raster order). Each cell says
 * whether an object's centre lies in it and, if so, that object's attributes and its box and two
 * inner points in the image, in cell units (x / cell width from the image's left edge); every cell
 * also says where it is. The Qwen2.5-VL vision tower has rotary positions only, so on a uniform
 * background its features could not say where their cell is; the world's background carries a
 * fixed colour ramp (render.ts BG_PLACE) that they read it from. The geometry comes twice: as
 * values, and as the Fourier code the number tokens start with (numbers.ts).
 */
import { COLORS, SHAPES, SIZES, TEXTURES, type WorldObject } from '../data/world/render.ts';
import { NUMBER_CODE_FREQUENCIES, numberCode } from './numbers.ts';

/** the head's output layout, per cell */
export const CELL_FIELDS = {
  objectness: 1, color: COLORS.length, shape: SHAPES.length, texture: TEXTURES.length, size: SIZES.length,
  /** box x1, y1, x2, y2 and points x1, y1, x2, y2 in the image, in cell units */
  geometry: 8,
  /** the cell's own centre (column + 0.5, row + 0.5), in cell units */
  position: 2,
  /** the 8 geometry values in view pixels as numbers.ts codes (2F each), 0 where no centre */
  code: 8 * 2 * NUMBER_CODE_FREQUENCIES,
} as const;
export const CELL_OUTPUTS = Object.values(CELL_FIELDS).reduce((a, b) => a + b, 0);

/** an object with its mask's tight box and its two inner points, in image pixels */
export interface CellObject extends WorldObject {
  box: readonly [number, number, number, number];
  points: readonly [readonly [number, number], readonly [number, number]];
}

export interface CellTargets {
  rows: number;
  cols: number;
  /** [cells] 1 where an object's centre lies in the cell */
  objectness: Float32Array;
  /** [cells] class index per attribute (-1 where the cell holds no centre) */
  color: Int32Array;
  shape: Int32Array;
  texture: Int32Array;
  size: Int32Array;
  /** [cells, 8] box and points in cell units, 0 where no centre */
  geometry: Float32Array;
  /** [cells, 2] */
  position: Float32Array;
  /** [cells, 8 * 2F] */
  code: Float32Array;
}

/**
 * Targets for an image of `width` x `height` pixels seen as `rows` x `cols` cells. Where two
 * centres share a cell, the larger object is the cell's.
 */
export function cellTargets(objects: readonly CellObject[], width: number, height: number, rows: number, cols: number, view = width): CellTargets {
  const n = rows * cols;
  const t: CellTargets = {
    rows, cols, objectness: new Float32Array(n), color: new Int32Array(n).fill(-1), shape: new Int32Array(n).fill(-1),
    texture: new Int32Array(n).fill(-1), size: new Int32Array(n).fill(-1), geometry: new Float32Array(n * 8), position: new Float32Array(n * 2),
    code: new Float32Array(n * CELL_FIELDS.code),
  };
  const cw = width / cols, ch = height / rows;
  for (let k = 0; k < n; k++) t.position.set([(k % cols) + 0.5, Math.floor(k / cols) + 0.5], k * 2);
  const owner = new Array<CellObject | null>(n).fill(null);
  for (const o of objects) {
    const c = Math.min(Math.max(Math.floor(o.cx / cw), 0), cols - 1);
    const r = Math.min(Math.max(Math.floor(o.cy / ch), 0), rows - 1);
    const k = r * cols + c;
    if (owner[k] && owner[k]!.r >= o.r) continue;
    owner[k] = o;
    t.objectness[k] = 1;
    t.color[k] = COLORS.indexOf(o.color);
    t.shape[k] = SHAPES.indexOf(o.shape);
    t.texture[k] = TEXTURES.indexOf(o.texture);
    t.size[k] = SIZES.indexOf(o.size);
    const rx = (x: number) => x / cw, ry = (y: number) => y / ch;
    const [b, [p, q]] = [o.box, o.points];
    t.geometry.set([rx(b[0]), ry(b[1]), rx(b[2]), ry(b[3]), rx(p[0]), ry(p[1]), rx(q[0]), ry(q[1])], k * 8);
    // in view pixels: x (image px) * view / width
    const g = [b[0], b[1], b[2], b[3], p[0], p[1], q[0], q[1]].map((v, j) => (v * view) / (j % 2 ? height : width));
    g.forEach((v, j) => t.code.set(numberCode(v, view), k * CELL_FIELDS.code + j * 2 * NUMBER_CODE_FREQUENCIES));
  }
  return t;
}
