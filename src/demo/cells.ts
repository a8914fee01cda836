/**
 * Dense per-cell targets for pretraining the policy's vision tower on the world: one cell per
 * merged image token (the policy sees a gh x gw grid of them, raster order). Each cell says
 * whether an object's centre lies in it and, if so, that object's attributes and geometry; every
 * cell also carries its own normalised position, so the tower's features say where they are
 * (the Qwen2.5-VL vision tower has rotary positions only, no absolute ones).
 */
import { COLORS, SHAPES, SIZES, TEXTURES, type WorldObject } from '../data/world/render.ts';

/** the head's output layout, per cell */
export const CELL_FIELDS = {
  objectness: 1, color: COLORS.length, shape: SHAPES.length, texture: TEXTURES.length, size: SIZES.length,
  /** centre within the cell, centre in the image, half-extent: all in [0, 1] */
  geometry: 5,
  /** the cell's own (column, row) in [0, 1] */
  position: 2,
} as const;
export const CELL_OUTPUTS = Object.values(CELL_FIELDS).reduce((a, b) => a + b, 0);

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
  /** [cells, 5] (cx in cell, cy in cell, cx, cy, r), 0 where no centre */
  geometry: Float32Array;
  /** [cells, 2] */
  position: Float32Array;
}

/**
 * Targets for an image of `width` x `height` pixels seen as `rows` x `cols` cells. Where two
 * centres share a cell, the larger object is the cell's.
 */
export function cellTargets(objects: readonly WorldObject[], width: number, height: number, rows: number, cols: number): CellTargets {
  const n = rows * cols;
  const t: CellTargets = {
    rows, cols, objectness: new Float32Array(n), color: new Int32Array(n).fill(-1), shape: new Int32Array(n).fill(-1),
    texture: new Int32Array(n).fill(-1), size: new Int32Array(n).fill(-1), geometry: new Float32Array(n * 5), position: new Float32Array(n * 2),
  };
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const k = r * cols + c;
    t.position[k * 2] = cols > 1 ? c / (cols - 1) : 0;
    t.position[k * 2 + 1] = rows > 1 ? r / (rows - 1) : 0;
  }
  const owner = new Array<WorldObject | null>(n).fill(null);
  for (const o of objects) {
    const fx = Math.min(Math.max(o.cx / width, 0), 1 - 1e-6);
    const fy = Math.min(Math.max(o.cy / height, 0), 1 - 1e-6);
    const c = Math.floor(fx * cols), r = Math.floor(fy * rows);
    const k = r * cols + c;
    if (owner[k] && owner[k]!.r >= o.r) continue;
    owner[k] = o;
    t.objectness[k] = 1;
    t.color[k] = COLORS.indexOf(o.color);
    t.shape[k] = SHAPES.indexOf(o.shape);
    t.texture[k] = TEXTURES.indexOf(o.texture);
    t.size[k] = SIZES.indexOf(o.size);
    t.geometry.set([fx * cols - c, fy * rows - r, fx, fy, o.r / Math.max(width, height)], k * 5);
  }
  return t;
}
