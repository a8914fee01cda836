/** A progress bar with rate and ETA for long work, on stderr (quiet when DPAD_QUIET is set or stderr is not a TTY and `force` is false). */
export class Progress {
  private readonly t0 = Date.now();
  private last = 0;
  private done = 0;
  readonly total: number;
  readonly label: string;
  private readonly enabled: boolean;

  constructor(label: string, total: number, opts: { force?: boolean } = {}) {
    this.label = label;
    this.total = total;
    this.enabled = !process.env.DPAD_QUIET && (opts.force ?? true);
  }

  tick(n = 1, note = ''): void {
    this.done += n;
    const now = Date.now();
    if (!this.enabled || (now - this.last < 500 && this.done < this.total)) return;
    this.last = now;
    const el = (now - this.t0) / 1000;
    const rate = this.done / Math.max(el, 1e-9);
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    const w = 24;
    const f = Math.min(w, Math.round((this.done / Math.max(this.total, 1)) * w));
    const fmt = (s: number) => (Number.isFinite(s) ? (s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${s.toFixed(0)}s`) : '?');
    const line = `${this.label} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${this.done}/${this.total} ${fmt(el)} elapsed, ETA ${fmt(eta)}${note ? '  ' + note : ''}`;
    process.stderr.write(process.stderr.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
    if (this.done >= this.total && process.stderr.isTTY) process.stderr.write('\n');
  }
}
