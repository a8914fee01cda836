/** Every test file imports this first: one backend for the whole run (wasm unless DPAD_BACKEND says). */
process.env.DPAD_QUIET ??= '1';
import { initBackend } from '../../src/backend.ts';

export const backend = await initBackend({ quiet: true });
export const FIXTURES = new URL('../../../shared/fixtures/', import.meta.url).pathname;
