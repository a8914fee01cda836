/** Errors that say which file, tensor key or config field is at fault. */

export class FormatError extends Error {
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'FormatError';
    this.file = file;
  }
}

export class WeightError extends Error {
  readonly file: string;
  readonly key: string;
  constructor(file: string, key: string, message: string) {
    super(`${file}: tensor '${key}': ${message}`);
    this.name = 'WeightError';
    this.file = file;
    this.key = key;
  }
}
