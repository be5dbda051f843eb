export * from './object-store.js';
export * from './job-runner.js';
export * from './events.js';
