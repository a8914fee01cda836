/**
 * PyTorch checkpoints in the zip format of torch.save (>= 1.6): `<root>/data.pkl` is a
 * pickle whose tensors refer, through persistent ids, to storages `<root>/data/<key>`.
 * The pickle is parsed by pickleparser with a name resolver that accepts only an
 * allowlist of torch globals: nothing in the file is ever executed.
 */
import { NameRegistry, Parser } from 'pickleparser';
import { DTYPE_BYTES, decode, numel, type RawTensor, type StorageDtype } from './dtypes.ts';
import { FormatError, WeightError } from './errors.ts';
import type { TensorMeta, TensorSource } from './source.ts';
import { ZipReader } from './zip.ts';

const STORAGE_DTYPES: Record<string, StorageDtype> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8',
  ByteStorage: 'U8', BoolStorage: 'BOOL',
};

/** A storage as a persistent id names it; made only by the persistent-id resolver. */
class StorageRef {
  readonly dtype: StorageDtype;
  readonly key: string;
  readonly numel: number;
  constructor(dtype: StorageDtype, key: string, numel: number) {
    this.dtype = dtype;
    this.key = key;
    this.numel = numel;
  }
}

/**
 * A tensor as the pickle describes it: a view (offset, shape, stride) of a storage. Only the
 * allowlisted rebuild functions construct one, so no other pickled object can pass for a tensor.
 */
export class TorchTensorRef {
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
  constructor(storage: StorageRef, offset: number, shape: number[], stride: number[]) {
    this.storage = storage;
    this.offset = offset;
    this.shape = shape;
    this.stride = stride;
  }
}

type StorageClass = (() => never) & { storageDtype: StorageDtype };

class PyOrderedDict extends Map<unknown, unknown> {
  state: unknown = null;
  __setstate__(s: unknown): void {
    this.state = s;
  }
}

function isTensorRef(v: unknown): v is TorchTensorRef {
  return v instanceof TorchTensorRef;
}

function toInt(v: unknown, what: string, file: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw new FormatError(file, `data.pkl: ${what} is not an integer: ${JSON.stringify(typeof v === 'bigint' ? v.toString() : v) ?? String(v)}`);
  }
  return n;
}

function toIntList(v: unknown, what: string, file: string): number[] {
  if (!Array.isArray(v) || !v.every(x => Number.isSafeInteger(typeof x === 'bigint' ? Number(x) : x))) {
    throw new FormatError(file, `data.pkl: ${what} is not a tuple of integers: ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))}`);
  }
  return v.map(x => Number(x));
}

/** The allowlist: torch's tensor rebuild functions, storage classes and OrderedDict. */
class AllowlistRegistry extends NameRegistry {
  private readonly file: string;
  constructor(file: string) {
    super();
    this.file = file;
    const file_ = file;
    this.register('collections', 'OrderedDict', function OrderedDict() { return new PyOrderedDict(); });
    const rebuild = (storage: unknown, offset: unknown, size: unknown, stride: unknown): TorchTensorRef => {
      if (!(storage instanceof StorageRef)) throw new FormatError(file_, 'data.pkl: _rebuild_tensor_v2 without a storage');
      return new TorchTensorRef(storage, toInt(offset, 'tensor storage offset', file_), toIntList(size, 'tensor size', file_), toIntList(stride, 'tensor stride', file_));
    };
    const parameter = (data: unknown): TorchTensorRef => {
      if (!(data instanceof TorchTensorRef)) throw new FormatError(file_, 'data.pkl: _rebuild_parameter of something that is not a rebuilt tensor');
      return data;
    };
    this.register('torch._utils', '_rebuild_tensor_v2', rebuild);
    this.register('torch._utils', '_rebuild_tensor', rebuild);
    this.register('torch._utils', '_rebuild_parameter', parameter);
    this.register('torch._utils', '_rebuild_parameter_with_state', parameter);
    for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
      const cls = Object.assign(() => { throw new FormatError(file_, `data.pkl: torch.${name} called directly`); }, { storageDtype: dtype });
      this.register('torch', name, cls);
    }
  }
  onMissingName(module: string, name: string): never {
    throw new FormatError(this.file, `data.pkl refers to '${module}.${name}', which is not on the allowlist of torch globals (refusing to go on)`);
  }
}

export function unpickle(bytes: Uint8Array, file: string): unknown {
  const parser = new Parser({
    nameResolver: new AllowlistRegistry(file),
    unpicklingTypeOfDictionary: 'Map',
    persistentResolver: {
      resolve(pid: unknown): StorageRef {
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
          throw new FormatError(file, `data.pkl: unsupported persistent id ${JSON.stringify(pid)}`);
        }
        const cls = pid[1] as StorageClass;
        if (typeof cls !== 'function' || !cls.storageDtype) throw new FormatError(file, 'data.pkl: persistent id without a storage class');
        if (typeof pid[2] !== 'string' || !/^[A-Za-z0-9_]+$/.test(pid[2])) throw new FormatError(file, `data.pkl: bad storage key ${JSON.stringify(pid[2])}`);
        return new StorageRef(cls.storageDtype, pid[2], toInt(pid[4], 'storage size', file));
      },
    },
  });
  try {
    return parser.parse(bytes);
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(file, `data.pkl could not be parsed (${(e as Error).message}): corrupt or truncated`);
  }
}

/** Find the state dict inside a checkpoint object: itself, or under 'model' / 'state_dict'. */
function findStateDict(obj: unknown, file: string, root?: string): Map<unknown, unknown> {
  if (!(obj instanceof Map)) throw new FormatError(file, 'the checkpoint is not a dict');
  if (root !== undefined) {
    const v = obj.get(root);
    if (!(v instanceof Map)) throw new FormatError(file, `the checkpoint has no dict under '${root}' (keys: ${[...obj.keys()].join(', ')})`);
    return v;
  }
  const values = [...obj.values()];
  if (values.length > 0 && values.every(isTensorRef)) return obj;
  for (const k of ['model', 'state_dict', 'module']) {
    const v = obj.get(k);
    if (v instanceof Map) return v;
  }
  return obj;
}

export class TorchCheckpoint implements TensorSource {
  readonly path: string;
  /** the unpickled top-level object (Maps, arrays, TorchTensorRefs) */
  readonly object: unknown;
  private readonly zip: ZipReader;
  private readonly prefix: string;
  private readonly tensors = new Map<string, TorchTensorRef>();

  private constructor(file: string, zip: ZipReader, root?: string) {
    this.path = file;
    this.zip = zip;
    const pkl = [...zip.entries.keys()].find(n => n === 'data.pkl' || n.endsWith('/data.pkl'));
    if (!pkl) throw new FormatError(file, 'no data.pkl in the archive: not a torch.save checkpoint');
    this.prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    this.object = unpickle(zip.read(pkl), file);
    const sd = findStateDict(this.object, file, root);
    for (const [k, v] of sd) {
      if (!isTensorRef(v)) continue;
      const key = String(k);
      this.check(key, v);
      this.tensors.set(key, v);
    }
  }

  /** Open a torch.save zip checkpoint; `root` picks the dict holding the tensors (default: auto). */
  static open(file: string, opts: { root?: string } = {}): TorchCheckpoint {
    const zip = (() => {
      try {
        return ZipReader.open(file);
      } catch (e) {
        const msg = (e as Error).message;
        if (/no end-of-central-directory/.test(msg)) {
          throw new FormatError(file, 'not a zip-format torch checkpoint (legacy torch.save format, or truncated): re-save it with torch.save(obj, f) from torch >= 1.6');
        }
        throw e;
      }
    })();
    try {
      return new TorchCheckpoint(file, zip, opts.root);
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  private check(key: string, t: TorchTensorRef): void {
    const entry = this.zip.entries.get(`${this.prefix}data/${t.storage.key}`);
    if (!entry) throw new WeightError(this.path, key, `storage data/${t.storage.key} is missing from the archive`);
    const bytes = DTYPE_BYTES[t.storage.dtype];
    if (entry.size % bytes !== 0) throw new WeightError(this.path, key, `storage data/${t.storage.key} has ${entry.size} bytes, not a multiple of ${bytes} (${t.storage.dtype})`);
    const storageNumel = entry.size / bytes;
    if (t.shape.length !== t.stride.length) throw new WeightError(this.path, key, `size ${JSON.stringify(t.shape)} and stride ${JSON.stringify(t.stride)} differ in rank`);
    if (t.shape.some(d => d < 0) || t.stride.some(s => s < 0) || t.offset < 0) throw new WeightError(this.path, key, 'negative size, stride or offset');
    if (numel(t.shape) === 0) return;
    // a view may not hold more elements than its storage (a stride-0 view of a tiny storage would
    // otherwise become a huge allocation)
    if (numel(t.shape) > storageNumel) {
      throw new WeightError(this.path, key, `view of size ${JSON.stringify(t.shape)} has ${numel(t.shape)} elements but its storage data/${t.storage.key} holds ${storageNumel}`);
    }
    let last = t.offset;
    for (let i = 0; i < t.shape.length; i++) last += (t.shape[i] - 1) * t.stride[i];
    if (last >= storageNumel) {
      throw new WeightError(this.path, key, `view (offset ${t.offset}, size ${JSON.stringify(t.shape)}, stride ${JSON.stringify(t.stride)}) reaches element ${last} of a ${storageNumel}-element storage: truncated or corrupt`);
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }
  has(key: string): boolean {
    return this.tensors.has(key);
  }
  meta(key: string): TensorMeta {
    const t = this.tensors.get(key);
    if (!t) throw new WeightError(this.path, key, 'no such tensor in the checkpoint');
    return { dtype: t.storage.dtype, shape: t.shape.slice() };
  }

  read(key: string): RawTensor {
    const t = this.tensors.get(key);
    if (!t) throw new WeightError(this.path, key, 'no such tensor in the checkpoint');
    const name = `${this.prefix}data/${t.storage.key}`;
    const bytes = DTYPE_BYTES[t.storage.dtype];
    const n = numel(t.shape);
    const where = () => `${this.path}: tensor '${key}'`;
    if (n === 0) return { dtype: t.storage.dtype, shape: t.shape.slice(), data: decode(new Uint8Array(0), t.storage.dtype, 0, where) };
    // contiguous views are read directly; any other view is gathered element by element
    const contiguous = (() => {
      let s = 1;
      for (let i = t.shape.length - 1; i >= 0; i--) {
        if (t.shape[i] !== 1 && t.stride[i] !== s) return false;
        s *= t.shape[i];
      }
      return true;
    })();
    if (contiguous) {
      const raw = this.zip.read(name, t.offset * bytes, n * bytes);
      return { dtype: t.storage.dtype, shape: t.shape.slice(), data: decode(raw, t.storage.dtype, n, where) };
    }
    const entry = this.zip.entries.get(name)!;
    const all = decode(this.zip.read(name), t.storage.dtype, entry.size / bytes, where);
    const out = new (all.constructor as new (n: number) => typeof all)(n);
    const idx = new Array<number>(t.shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let src = t.offset;
      for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d];
      out[i] = all[src];
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d] < t.shape[d]) break;
        idx[d] = 0;
      }
    }
    return { dtype: t.storage.dtype, shape: t.shape.slice(), data: out };
  }

  close(): void {
    this.zip.close();
  }
}
