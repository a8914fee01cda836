/** Moved to optim/adamw.ts (the optimizer sits below the trainer); this path stays for existing importers. */
export * from '../optim/adamw.ts';
