/**
 * The training run's log.jsonl: one JSON line per step. A resumed run goes back to its checkpoint's
 * step, so the entries past it (written before a crash or kill) are dropped before the steps are
 * re-run; each step is then logged exactly once, and the curves drawn from the log have no duplicates.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../io/atomic.ts';

export interface LoggedStep {
  step: number;
  [k: string]: unknown;
}

/**
 * The entries of a step log in step order, each step once (a repeated step keeps its last entry).
 * Lines that are not a JSON object with an integer `step` (e.g. one cut short by a kill) are
 * skipped and counted.
 */
export function readStepLog<T extends LoggedStep = LoggedStep>(file: string): { entries: T[]; bad: number; duplicates: number } {
  if (!fs.existsSync(file)) return { entries: [], bad: 0, duplicates: 0 };
  const byStep = new Map<number, T>();
  let bad = 0, duplicates = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    const step = (e as LoggedStep | null)?.step;
    if (typeof e !== 'object' || e === null || !Number.isInteger(step)) {
      bad++;
      continue;
    }
    if (byStep.has(step as number)) duplicates++;
    byStep.set(step as number, e as T);
  }
  return { entries: [...byStep.values()].sort((a, b) => a.step - b.step), bad, duplicates };
}

/**
 * Keep only the entries of steps 1..`step` (the steps the resumed state has done), each once,
 * rewriting the file atomically when anything is dropped. Returns how many lines were dropped.
 */
export function trimStepLog(file: string, step: number): number {
  if (!fs.existsSync(file)) return 0;
  const total = fs.readFileSync(file, 'utf8').split('\n').filter(l => l.trim()).length;
  const kept = readStepLog(file).entries.filter(e => e.step <= step);
  const dropped = total - kept.length;
  if (dropped > 0) writeFileAtomic(file, kept.map(e => JSON.stringify(e) + '\n').join(''));
  return dropped;
}
