export * from './advantages.ts';
export * from './loss.ts';
export * from './actor.ts';
export * from './update.ts';
