/**
 * Reasoning-segmentation samples of the embedded world: a scene, a query of one of three types
 * (attribute, relation, logic) at one of three difficulties (how many distractors share the
 * target's attributes; Medium and Hard scenes always hold a near twin, one attribute apart), and
 * the ground truth (mask, box, two inner points, reference caption, reference reasoning).
 * Deterministic from (split, index); train/val/test use disjoint seeds.
 */
import seedrandom from 'seedrandom';
import type { ImageU8 } from '../../io/resample.ts';
import { formatGroundTruth, type Box, type Point } from '../../prompt/answer.ts';
import { COLORS, ROUND, SHAPES, SIZES, TEXTURES, inscribedPoints, maskBox, renderScene, type WorldObject } from './render.ts';

export type QueryType = 'Attribute' | 'Relation' | 'Logic';
export type Difficulty = 'Easy' | 'Medium' | 'Hard';
export type Split = 'train' | 'val' | 'test';

export interface WorldSample {
  id: string;
  split: Split;
  index: number;
  image: ImageU8;
  query: string;
  type: QueryType;
  difficulty: Difficulty;
  target: number;
  objects: WorldObject[];
  /** target mask at the image's size */
  mask: Uint8Array;
  /** every object's visible mask, by object index (masks[target] is mask): the segmenter learns them all */
  masks: Uint8Array[];
  /** in image pixels */
  box: Box;
  points: [Point, Point];
  caption: string;
  /** reference reasoning for the warm start */
  think: string;
  /** `<box>..</box><points>..</points>` in the policy's frame (frame x frame) */
  solution: string;
}

export interface WorldOptions {
  size?: number;
  /** the policy frame the solution is expressed in (SPEC: 840) */
  frame?: number;
}

type Attr = 'size' | 'texture' | 'color' | 'shape';
const ATTRS: Attr[] = ['size', 'texture', 'color', 'shape'];

export function describe(o: WorldObject, attrs: Attr[]): string {
  const words: string[] = [];
  if (attrs.includes('size')) words.push(o.size);
  if (attrs.includes('texture')) words.push(o.texture);
  if (attrs.includes('color')) words.push(o.color);
  words.push(attrs.includes('shape') ? o.shape : 'object');
  return `the ${words.join(' ')}`;
}

export function captionOf(o: WorldObject): string {
  return `a ${o.size} ${o.texture === 'solid' ? '' : o.texture + ' '}${o.color} ${o.shape}`;
}

function matches(o: WorldObject, t: WorldObject, attrs: Attr[]): boolean {
  return attrs.every(a => o[a] === t[a]);
}

/** the smallest attribute set (shape preferred) that singles out objects[t] */
export function minimalDescription(objects: WorldObject[], t: number): Attr[] | null {
  const subsets: Attr[][] = [];
  for (let m = 1; m < 16; m++) subsets.push(ATTRS.filter((_, i) => m & (1 << i)));
  subsets.sort((a, b) => a.length - b.length || Number(b.includes('shape')) - Number(a.includes('shape')));
  for (const s of subsets) if (objects.filter((o, i) => i !== t && matches(o, objects[t], s)).length === 0) return s;
  return null;
}

const RELATIONS = {
  'left of': (a: WorldObject, b: WorldObject) => a.cx < b.cx - 4,
  'right of': (a: WorldObject, b: WorldObject) => a.cx > b.cx + 4,
  above: (a: WorldObject, b: WorldObject) => a.cy < b.cy - 4,
  below: (a: WorldObject, b: WorldObject) => a.cy > b.cy + 4,
};

type Pred = { name: string; test: (o: WorldObject) => boolean };
const PREDICATES: Pred[] = [
  ...COLORS.map(c => ({ name: c, test: (o: WorldObject) => o.color === c })),
  { name: 'round', test: (o: WorldObject) => ROUND.has(o.shape) },
  ...SIZES.map(s => ({ name: s, test: (o: WorldObject) => o.size === s })),
  { name: 'striped', test: (o: WorldObject) => o.texture === 'striped' },
  { name: 'dotted', test: (o: WorldObject) => o.texture === 'dotted' },
];

function pick<T>(rng: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)];
}

type Kind = Omit<WorldObject, 'cx' | 'cy' | 'r'>;
const VALUES: { [A in Attr]: readonly Kind[A][] } = { size: SIZES, texture: TEXTURES, color: COLORS, shape: SHAPES };

/** the target with one attribute (seeded) set to another of its values */
function nearTwin(rng: () => number, t: Kind): Kind {
  const a = pick(rng, ATTRS);
  return { ...t, [a]: pick(rng, VALUES[a].filter(v => v !== t[a])) };
}

function placeObjects(rng: () => number, n: number, size: number, difficulty: Difficulty): WorldObject[] {
  const s = size / 160;
  const target: Kind = { shape: pick(rng, SHAPES), color: pick(rng, COLORS), size: pick(rng, SIZES), texture: pick(rng, TEXTURES) };
  const shared = difficulty === 'Easy' ? 1 : difficulty === 'Medium' ? 2 : 3;
  const kinds: Kind[] = [target];
  // Medium and Hard scenes carry a near twin: a distractor that differs from the target in exactly
  // one attribute, so the description (and the caption CLIP scores) must name that attribute
  if (difficulty !== 'Easy' && n > 1) kinds.push(nearTwin(rng, target));
  for (let i = kinds.length; i < n; i++) {
    const keep = new Set<Attr>();
    const k = Math.floor(rng() * (shared + 1));
    while (keep.size < k) keep.add(pick(rng, ATTRS));
    kinds.push({
      shape: keep.has('shape') ? target.shape : pick(rng, SHAPES), color: keep.has('color') ? target.color : pick(rng, COLORS),
      size: keep.has('size') ? target.size : pick(rng, SIZES), texture: keep.has('texture') ? target.texture : pick(rng, TEXTURES),
    });
  }
  const out: WorldObject[] = [];
  for (const k of kinds) {
    const r = (k.size === 'small' ? 9 + rng() * 3 : 16 + rng() * 5) * s;
    for (let tries = 0; tries < 200; tries++) {
      const cx = r + 2 + rng() * (size - 2 * r - 4);
      const cy = r + 2 + rng() * (size - 2 * r - 4);
      if (out.every(o => Math.hypot(o.cx - cx, o.cy - cy) > o.r + r + 3 * s)) {
        out.push({ ...k, cx, cy, r });
        break;
      }
    }
  }
  return out;
}

/** where an object lies, in the words of a 3 x 3 grid: "middle right" */
export function position(o: WorldObject, size: number): string {
  const h = o.cx < size / 3 ? 'left' : o.cx > (2 * size) / 3 ? 'right' : 'center';
  const v = o.cy < size / 3 ? 'top' : o.cy > (2 * size) / 3 ? 'bottom' : 'middle';
  return `${v} ${h}`;
}

function buildQuery(rng: () => number, objects: WorldObject[], t: number, want: QueryType): { query: string; type: QueryType; why: string } | null {
  const tgt = objects[t];
  if (want === 'Logic') {
    const cands: [Pred, Pred][] = [];
    for (let i = 0; i < PREDICATES.length; i++) for (let j = i + 1; j < PREDICATES.length; j++) {
      const [a, b] = [PREDICATES[i], PREDICATES[j]];
      const neither = objects.map((o, k) => (!a.test(o) && !b.test(o) ? k : -1)).filter(k => k >= 0);
      if (neither.length === 1 && neither[0] === t) cands.push([a, b]);
    }
    if (cands.length) {
      const [a, b] = pick(rng, cands);
      return { query: `the only object that is neither ${a.name} nor ${b.name}`, type: 'Logic', why: `Every other object is ${a.name} or ${b.name}` };
    }
  }
  if (want === 'Relation' || want === 'Logic') {
    const rels = Object.entries(RELATIONS);
    for (let tries = 0; tries < 20; tries++) {
      const a = Math.floor(rng() * objects.length);
      if (a === t) continue;
      const aDesc = minimalDescription(objects, a);
      if (!aDesc) continue;
      const [name, rel] = pick(rng, rels);
      if (!rel(tgt, objects[a])) continue;
      for (const attrs of [['shape'], ['color', 'shape'], ['size', 'color', 'shape']] as Attr[][]) {
        const hits = objects.filter((o, k) => k !== a && matches(o, tgt, attrs) && rel(o, objects[a]));
        if (hits.length === 1) {
          return { query: `${describe(tgt, attrs)} ${name} ${describe(objects[a], aDesc)}`, type: 'Relation', why: `It is ${name} ${describe(objects[a], aDesc)}` };
        }
      }
    }
  }
  const attrs = minimalDescription(objects, t);
  if (!attrs) return null;
  return { query: describe(tgt, attrs), type: 'Attribute', why: `No other object is ${describe(tgt, attrs).slice(4)}` };
}

const SPLIT_SALT: Record<Split, string> = { train: 'world-train', val: 'world-val', test: 'world-test' };

/** The sample (split, index); always the same for the same arguments. */
export function worldSample(split: Split, index: number, opts: WorldOptions = {}): WorldSample {
  const size = opts.size ?? 160;
  const frame = opts.frame ?? 840;
  for (let attempt = 0; ; attempt++) {
    const seed = `${SPLIT_SALT[split]}:${index}:${attempt}`;
    const rng = seedrandom(seed);
    const difficulty = (['Easy', 'Medium', 'Hard'] as const)[Math.floor(rng() * 3)];
    const wantType = (['Attribute', 'Relation', 'Logic'] as const)[Math.floor(rng() * 3)];
    const n = difficulty === 'Easy' ? 3 : difficulty === 'Medium' ? 4 + Math.floor(rng() * 2) : 5 + Math.floor(rng() * 2);
    const objects = placeObjects(rng, n, size, difficulty);
    if (objects.length < 2) continue;
    const t = 0;
    const q = buildQuery(rng, objects, t, wantType);
    if (!q) continue;
    const scene = renderScene(size, size, objects, seed);
    const mask = scene.masks[t];
    if (!mask.some(v => v)) continue;
    const box = maskBox(mask, size, size);
    const points = inscribedPoints(mask, size, size);
    const k = frame / size;
    const fbox: Box = [box[0] * k, box[1] * k, box[2] * k, box[3] * k];
    const fpts: [Point, Point] = [[points[0][0] * k, points[0][1] * k], [points[1][0] * k, points[1][1] * k]];
    const caption = captionOf(objects[t]);
    const extra = difficulty === 'Hard' ? ` ${objects.length - 1} other objects share some of its attributes, so I check each one.` : difficulty === 'Medium' ? ' Some objects look similar.' : '';
    const think = `There are ${objects.length} objects. I need ${q.query}.${extra} ${q.why}. It is ${caption} in the ${position(objects[t], size)}.`;
    return {
      id: `${split}-${index}`, split, index, image: scene.image, query: q.query, type: q.type, difficulty, target: t, objects,
      mask, masks: scene.masks, box, points, caption, think, solution: formatGroundTruth(fbox, fpts),
    };
  }
}

/** The reference response in the SPEC format, coordinates rounded in the policy frame. */
export function referenceResponse(s: WorldSample, frame = 840): string {
  const k = frame / s.image.width;
  const r = (v: number) => Math.round(v * k);
  const json = `{"bbox": [${s.box.map(r).join(', ')}], "points_1": [${s.points[0].map(r).join(', ')}], "points_2": [${s.points[1].map(r).join(', ')}]}`;
  return `<think>${s.think}</think><answer>${json}</answer><caption>${s.caption}</caption>`;
}
