export * from './template.ts';
export * from './answer.ts';
export * from './extract.ts';
export { MAX_RESPONSE_CHARS, responseTooLong } from './scan.ts';
