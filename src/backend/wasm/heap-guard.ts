/**
 * A wasm kernel that cannot get its working memory does not fail: XNNPACK prints
 * `XNN status for xnn_create_fully_connected_nc_f32 is not successful. Got status 6` to stderr and
 * the product comes back as zeros. At Qwen's 151,936-token vocabulary the LM head's packed weights
 * alone are 0.5-2.3 GB, so any real checkpoint on wasm hit this silently. Before a large product,
 * `assertWasmRoom` asks the wasm allocator for the memory XNNPACK is about to need (and frees it at
 * once); if the heap cannot give it, it throws, naming the shape, the bytes and the native backend.
 */
/** Products whose packed right operand is below this are never checked (the probe costs a malloc). */
export const GUARD_MIN_BYTES = 16 * 2 ** 20;

/** The wasm heap's hard limit (32-bit addresses). */
export const WASM_HEAP_LIMIT = 4 * 2 ** 30;

interface WasmAllocator { wasm?: { _malloc?(n: number): number; _free?(p: number): void; HEAPU8?: Uint8Array } }

/** Bytes XNNPACK's fully-connected operator packs for a [K, N] float32 weight (N padded to 16, plus the bias row), with 5 % slack. */
export function packedMatMulBytes(K: number, N: number): number {
  return Math.ceil(Math.ceil(N / 16) * 16 * (K + 1) * 4 * 1.05);
}

export class WasmHeapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmHeapError';
  }
}

/**
 * Throw when the wasm heap cannot hold `bytes` more (probe: malloc, then free). `what` names the
 * operation for the message. On a backend without the allocator it does nothing.
 */
export function assertWasmRoom(backend: unknown, bytes: number, what: string): void {
  const w = (backend as WasmAllocator).wasm;
  if (!w?._malloc || !w._free) return;
  const p = bytes < WASM_HEAP_LIMIT ? w._malloc(bytes) : 0;
  if (p) {
    w._free(p);
    return;
  }
  const heap = w.HEAPU8?.buffer.byteLength ?? 0;
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  throw new WasmHeapError(
    `wasm: ${what} needs ${gib(bytes)} of working memory, which the wasm heap (${gib(heap)} in use of its ${gib(WASM_HEAP_LIMIT)} limit) cannot give; ` +
      'on wasm it would silently return zeros. Use the native backend: npm run setup:native, then DPAD_BACKEND=tensorflow',
  );
}

/**
 * Right operands whose packed weights the wasm kernel already holds: it caches the XNNPACK
 * operator per right-hand tensor until that tensor is disposed, so a later product with the same
 * weight packs nothing and is not probed again.
 */
const packedOperands = new WeakSet<object>();

/**
 * The check for one BatchMatMul of [.., M, K] x [.., K, N] (shapes after any transpose; the output
 * is allocated too). `bId` is the right operand's dataId when the kernel will cache its packing.
 */
export function assertMatMulFits(backend: unknown, aShape: readonly number[], bShape: readonly number[], bId?: object): void {
  const [M, K] = aShape.slice(-2);
  const N = bShape[bShape.length - 1];
  const packed = packedMatMulBytes(K, N);
  if (packed < GUARD_MIN_BYTES || (bId && packedOperands.has(bId))) return;
  assertWasmRoom(backend, packed + M * N * 4, `a [${aShape}] x [${bShape}] product`);
  if (bId) packedOperands.add(bId);
}
