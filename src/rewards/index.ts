export * from './components.ts';
export * from './registry.ts';
export * from './score.ts';
export * from './discriminative.ts';
