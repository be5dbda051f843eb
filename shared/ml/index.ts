/** Public API of the ML core: base models, the embedder, heads, training, metrics, predict. */
export * from './base-models.js';
export * from './embedder.js';
export * from './model-io.js';
export * from './task-kinds.js';
export * from './heads.js';
export * from './loss-weighting.js';
export * from './train.js';
export * from './metrics.js';
export * from './mtl-evaluate.js';
export * from './predict.js';
