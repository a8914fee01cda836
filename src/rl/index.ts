export * from './adamw.ts';
export * from './advantages.ts';
export * from './loss.ts';
