import './helpers/setup.ts';
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultRng, entropyWords, NumpyGenerator, Pcg64, SeedSequence, shuffledSubset } from '../src/data/numpy_rng.ts';
import { RELEASED_SUBSET } from '../src/data/parquet.ts';

const SUBSET_FILE = new URL('../../shared/data/refcocog_9k_subset3000_seed9.json', import.meta.url).pathname;

// The expected values below were printed by numpy 2.4.6 (np.random.SeedSequence / default_rng).

test('SeedSequence: entropy words and the mixed pool equal numpy', () => {
  assert.equal(entropyWords(0), [0]);
  assert.equal(entropyWords(2 ** 32 + 5), [5, 1]);
  assert.equal(entropyWords([1, 2 ** 40]), [1, 0, 256]);
  assert.equal(Array.from(new SeedSequence(0).pool), [4265667335, 1328953910, 1320288413, 3365567143]);
  assert.equal(Array.from(new SeedSequence(9).pool), [383016820, 4180737978, 2560794892, 2567327560]);
  assert.equal(Array.from(new SeedSequence(2 ** 32 + 5).pool), [1943228144, 3666975122, 1548130432, 663351627]);
  assert.equal(Array.from(new SeedSequence([1, 2 ** 40]).pool), [809057319, 1156428706, 3048935000, 2747800784]);
  assert.equal(Array.from(new SeedSequence(12345678901234567890n).pool), [3436620908, 2934369251, 723718028, 663245011]);
  // a spawn key pads the entropy to the pool size; more words than the pool are mixed in afterwards
  assert.equal(Array.from(new SeedSequence(9, [1]).pool), [879518340, 3549238214, 1527897256, 49585964]);
  assert.equal(Array.from(new SeedSequence([1, 2, 3, 4, 5, 6]).pool), [988259991, 2719934729, 3479241324, 1314086023]);
  assert.equal(new SeedSequence(9).generateState64(4), [0xfedd4552c03df53cn, 0xe44f7adacce03589n, 0x91ec96439b6da1acn, 0x775fcc043a46cedn]);
  assert.throws(() => entropyWords(-1), /seed -1 is negative/);
  assert.throws(() => entropyWords(1.5), /seed 1.5 is not an integer/);
});

test('PCG64: seeded state, increment and raw 64-bit draws equal numpy', () => {
  const p = Pcg64.fromSeed(9);
  assert.is(p.state, 122965658091670373434691708784668317647n);
  assert.is(p.inc, 47650611409575876553999889140290214363n);
  assert.equal([p.nextUint64(), p.nextUint64(), p.nextUint64()], [16053264345985615649n, 5290843651973776416n, 11126119562532529086n]);
  // next_uint32 hands out the low half, then the buffered high half of one 64-bit draw
  const q = Pcg64.fromSeed(9);
  const lo = q.nextUint32();
  const hi = q.nextUint32();
  assert.is((BigInt(hi) << 32n) | BigInt(lo), 16053264345985615649n);
  assert.equal(defaultRng(9).random(3), [0.8702492039700847, 0.28681720908755537, 0.6031481500515619]);
});

test('Generator.permutation and shuffle equal numpy', () => {
  assert.equal(defaultRng(0).permutation(10), [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]);
  const g = defaultRng(42);
  assert.equal([g.permutation(1), g.permutation(2), g.permutation(5)], [[0], [1, 0], [3, 2, 0, 4, 1]]);
  assert.equal(defaultRng(7).shuffle(Array.from({ length: 12 }, (_, i) => i)), [4, 6, 10, 0, 1, 3, 8, 7, 2, 5, 9, 11]);
  assert.equal(defaultRng(123).permutation(100000).slice(0, 5), [52903, 74868, 16800, 16242, 92671]);
  assert.equal(defaultRng(1).permutation(0), []);
  assert.throws(() => defaultRng(1).permutation(-2), /permutation length must be a non-negative integer, got -2/);
});

test('Generator.integers (Lemire, 32- and 64-bit paths, the full 32-bit range) equals numpy, draw for draw', () => {
  const g: NumpyGenerator = defaultRng(9);
  assert.equal(g.integers(0, 10, 5), [4n, 8n, 9n, 2n, 1n]);
  assert.equal(g.integers(0, 10), [6n]);
  assert.equal(g.integers(5, 2 ** 40, 3), [854907765163n, 787332381605n, 1006471086314n]);
  assert.equal(g.integers(-3, 3, 4), [2n, 2n, 1n, 2n]);
  assert.equal(g.integers(0, 2 ** 32, 2), [56101292n, 114193450n]);
  assert.equal(g.integers(0, 10, 2), [7n, 4n]);
  assert.equal(defaultRng(3).integers(4, 5, 3), [4n, 4n, 4n], 'a one-value range draws nothing and returns low');
  assert.throws(() => g.integers(3, 3), /integers needs low < high, got low=3 high=3/);
});

test('the released 3,000-row subset: default_rng(9).permutation(9000)[:3000] equals the precomputed list', () => {
  const file = JSON.parse(fs.readFileSync(SUBSET_FILE, 'utf8')) as { indices: number[] };
  assert.is(file.indices.length, 3000);
  const got = shuffledSubset(9000, RELEASED_SUBSET.size, RELEASED_SUBSET.seed);
  assert.is(got.length, 3000);
  assert.equal(got, file.indices);
  assert.equal(got.slice(0, 4), [6832, 5912, 4282, 3437]);
  // another seed gives another subset; a set of `size` rows or fewer is kept whole, in order (as rl_dataset.py)
  assert.not.equal(shuffledSubset(9000, 3000, 10), got);
  assert.equal(shuffledSubset(3000, 3000, 9), Array.from({ length: 3000 }, (_, i) => i));
  assert.equal(shuffledSubset(5, 3000, 9), [0, 1, 2, 3, 4]);
});

test.run();
