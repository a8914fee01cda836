export * from './components.ts';
export * from './composite.ts';
export * from './parse.ts';
export { PyError, pyJsonLoads, pyStrip, type PyValue } from './pycompat.ts';
export * from './discriminative.ts';
export * from './extract.ts';
