/**
 * numpy's `np.random.default_rng(seed)`, bit for bit, for the draws the released code makes:
 * - `SeedSequence(seed)`: entropy as uint32 words, hashmix/mix into a 4-word pool, `generate_state`
 *   (numpy `bit_generator.pyx`);
 * - `PCG64`: the 128-bit LCG with the XSL-RR output, seeded from `generate_state(4, uint64)`, and its
 *   buffered 32-bit draw (numpy `_pcg64.pyx`, `src/pcg64/pcg64.h`);
 * - `Generator.permutation` / `shuffle`: Fisher-Yates from the end, `j = random_interval(i)` (masked
 *   rejection, 32-bit draws while i < 2^32) (numpy `_generator.pyx` `_shuffle_raw`, `distributions.c`);
 * - `Generator.integers` (int64, `endpoint=False`): `random_bounded_uint64_fill`, Lemire's method,
 *   with its 32-bit path for ranges below 2^32 (numpy `distributions.c`);
 * - `Generator.random`: 53-bit doubles.
 * HF `datasets` `Dataset.shuffle(seed)` is `default_rng(seed).permutation(len)`, which is what selects
 * DPAD's 3,000 training rows (REFERENCE §9). BigInt carries the 128-bit state.
 */

const M32 = 0xffffffffn;
const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;

// SeedSequence constants (numpy bit_generator.pyx)
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

// PCG_DEFAULT_MULTIPLIER_128
const PCG_MULT = (2549297995355413924n << 64n) | 4865540595714422341n;

export type SeedInput = number | bigint | readonly (number | bigint)[];

/** numpy `_coerce_to_uint32_array`: a non-negative integer as little-endian uint32 words (0 -> [0]); a list, each element's words in turn. */
export function entropyWords(seed: SeedInput): number[] {
  if (Array.isArray(seed)) return (seed as (number | bigint)[]).flatMap(v => entropyWords(v));
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new Error(`numpy_rng: seed ${seed} is not an integer (numpy: "seed must be integer")`);
  let n = BigInt(seed as number | bigint);
  if (n < 0n) throw new Error(`numpy_rng: seed ${seed} is negative (numpy: "expected non-negative integer")`);
  if (n === 0n) return [0];
  const out: number[] = [];
  while (n > 0n) { out.push(Number(n & M32)); n >>= 32n; }
  return out;
}

/** hashmix with a running hash constant held in `h[0]` (uint32 arithmetic). */
function hashmix(value: number, h: number[]): number {
  let v = (value ^ h[0]) >>> 0;
  h[0] = Math.imul(h[0], MULT_A) >>> 0;
  v = Math.imul(v, h[0]) >>> 0;
  return (v ^ (v >>> 16)) >>> 0;
}

function mix(x: number, y: number): number {
  const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
  return (r ^ (r >>> 16)) >>> 0;
}

/** numpy `SeedSequence(entropy, spawn_key)`: `pool` (4 x uint32) and `generateState`. */
export class SeedSequence {
  readonly pool: Uint32Array;

  constructor(entropy: SeedInput, spawnKey: readonly (number | bigint)[] = []) {
    let run = entropyWords(entropy);
    const spawn = entropyWords([...spawnKey]);
    if (spawn.length > 0 && run.length < POOL_SIZE) run = [...run, ...new Array(POOL_SIZE - run.length).fill(0)];
    const ent = [...run, ...spawn];
    const pool = new Array<number>(POOL_SIZE);
    const h = [INIT_A];
    for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < ent.length ? ent[i] : 0, h);
    for (let src = 0; src < POOL_SIZE; src++) {
      for (let dst = 0; dst < POOL_SIZE; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src], h));
    }
    for (let src = POOL_SIZE; src < ent.length; src++) {
      for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(ent[src], h));
    }
    this.pool = Uint32Array.from(pool);
  }

  /** `generate_state(n, np.uint32)`: n words. */
  generateState32(n: number): Uint32Array {
    const out = new Uint32Array(n);
    let h = INIT_B;
    for (let i = 0; i < n; i++) {
      let v = (this.pool[i % POOL_SIZE] ^ h) >>> 0;
      h = Math.imul(h, MULT_B) >>> 0;
      v = Math.imul(v, h) >>> 0;
      out[i] = (v ^ (v >>> 16)) >>> 0;
    }
    return out;
  }

  /** `generate_state(n, np.uint64)`: 2n uint32 words viewed little-endian as n uint64. */
  generateState64(n: number): bigint[] {
    const w = this.generateState32(2 * n);
    return Array.from({ length: n }, (_, k) => (BigInt(w[2 * k + 1]) << 32n) | BigInt(w[2 * k]));
  }
}

/** numpy's PCG64 bit generator (PCG XSL-RR 128/64). */
export class Pcg64 {
  state = 0n;
  inc = 0n;
  /** the high half of the last 64-bit draw, waiting to be the next 32-bit draw */
  hasUint32 = false;
  uinteger = 0;

  /** `PCG64(seed)` = `PCG64(SeedSequence(seed))`. */
  static fromSeed(seed: SeedInput | SeedSequence): Pcg64 {
    const ss = seed instanceof SeedSequence ? seed : new SeedSequence(seed);
    const [s0, s1, i0, i1] = ss.generateState64(4);
    const g = new Pcg64();
    g.setSeed((s0 << 64n) | s1, (i0 << 64n) | i1);
    return g;
  }

  /** `pcg64_srandom_r(initstate, initseq)`. */
  setSeed(initState: bigint, initSeq: bigint): void {
    this.state = 0n;
    this.inc = ((initSeq << 1n) | 1n) & M128;
    this.step();
    this.state = (this.state + initState) & M128;
    this.step();
    this.hasUint32 = false;
    this.uinteger = 0;
  }

  private step(): void {
    this.state = (this.state * PCG_MULT + this.inc) & M128;
  }

  /** `next_uint64` (= `random_raw()`): step, then XSL-RR of the new state. */
  nextUint64(): bigint {
    this.step();
    const x = ((this.state >> 64n) ^ this.state) & M64;
    const rot = this.state >> 122n;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & M64;
  }

  /** `next_uint32`: the low half of a fresh 64-bit draw, then its high half. */
  nextUint32(): number {
    if (this.hasUint32) { this.hasUint32 = false; return this.uinteger; }
    const v = this.nextUint64();
    this.hasUint32 = true;
    this.uinteger = Number(v >> 32n);
    return Number(v & M32);
  }

  /** `next_double`: (next_uint64 >> 11) / 2^53. */
  nextDouble(): number {
    return Number(this.nextUint64() >> 11n) / 9007199254740992;
  }
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`numpy_rng: ${what} must be a non-negative integer, got ${n}`);
}

/** numpy's `Generator` over a PCG64 (the methods DPAD's data path needs). */
export class NumpyGenerator {
  readonly bitGenerator: Pcg64;

  constructor(bitGenerator: Pcg64) {
    this.bitGenerator = bitGenerator;
  }

  /** `random_interval(max)`: uniform on [0, max] by masked rejection (32-bit draws when max < 2^32). */
  randomInterval(max: number | bigint): bigint {
    const m = BigInt(max);
    if (m < 0n || m > M64) throw new Error(`numpy_rng: randomInterval max ${max} is outside [0, 2^64)`);
    if (m === 0n) return 0n;
    let mask = m;
    for (const s of [1n, 2n, 4n, 8n, 16n, 32n]) mask |= mask >> s;
    if (m <= M32) {
      const mk = Number(mask);
      const mx = Number(m);
      let w: number;
      do w = (this.bitGenerator.nextUint32() & mk) >>> 0; while (w > mx);
      return BigInt(w);
    }
    let v: bigint;
    do v = this.bitGenerator.nextUint64() & mask; while (v > m);
    return v;
  }

  /** `shuffle(x)` in place, for a JS array (numpy's 1-d path: i from n-1 down to 1, swap with random_interval(i)). */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = Number(this.randomInterval(i));
      const t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
    return x;
  }

  /** `permutation(n)`: a shuffled `arange(n)`. */
  permutation(n: number): number[] {
    checkCount(n, 'permutation length');
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /**
   * `integers(low, high, size)` with the default int64 dtype and `endpoint=False`: values in
   * [low, high), drawn by `random_bounded_uint64_fill` (Lemire; 32-bit draws when high - low - 1 < 2^32).
   */
  integers(low: number | bigint, high: number | bigint, size = 1): bigint[] {
    checkCount(size, 'integers size');
    const lo = BigInt(low);
    const hi = BigInt(high) - 1n;
    if (hi < lo) throw new Error(`numpy_rng: integers needs low < high, got low=${low} high=${high} (numpy: "low >= high")`);
    const rng = hi - lo;
    if (rng > M64) throw new Error(`numpy_rng: integers range ${rng} exceeds 2^64 - 1`);
    const out: bigint[] = [];
    for (let k = 0; k < size; k++) out.push(lo + this.boundedUint64(rng));
    return out;
  }

  /** an offset in [0, rng] as `random_bounded_uint64` (use_masked false) draws it */
  private boundedUint64(rng: bigint): bigint {
    const bg = this.bitGenerator;
    if (rng === 0n) return 0n;
    if (rng <= M32) {
      if (rng === M32) return BigInt(bg.nextUint32());
      const excl = rng + 1n;
      let m = BigInt(bg.nextUint32()) * excl;
      let left = m & M32;
      if (left < excl) {
        const threshold = (M32 - rng) % excl;
        while (left < threshold) { m = BigInt(bg.nextUint32()) * excl; left = m & M32; }
      }
      return m >> 32n;
    }
    if (rng === M64) return bg.nextUint64();
    const excl = rng + 1n;
    let m = bg.nextUint64() * excl;
    let left = m & M64;
    if (left < excl) {
      const threshold = (M64 - rng) % excl;
      while (left < threshold) { m = bg.nextUint64() * excl; left = m & M64; }
    }
    return m >> 64n;
  }

  /** `random(size)`: doubles in [0, 1). */
  random(size = 1): number[] {
    checkCount(size, 'random size');
    return Array.from({ length: size }, () => this.bitGenerator.nextDouble());
  }
}

/** `np.random.default_rng(seed)` for an integer (or list of integers) seed. */
export function defaultRng(seed: SeedInput): NumpyGenerator {
  return new NumpyGenerator(Pcg64.fromSeed(seed));
}

/**
 * The rows HF `Dataset.shuffle(seed=seed).select(range(size))` keeps, in their new order:
 * `default_rng(seed).permutation(n)[:size]`. As in DPAD's `rl_dataset.py`, a set of `size` rows
 * or fewer is left whole and in order.
 */
export function shuffledSubset(n: number, size: number, seed: SeedInput): number[] {
  checkCount(n, 'dataset length');
  checkCount(size, 'subset size');
  if (n <= size) return Array.from({ length: n }, (_, i) => i);
  return defaultRng(seed).permutation(n).slice(0, size);
}
