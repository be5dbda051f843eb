import { z } from 'zod';
import { CutSchema } from './base-model.js';
import { NameSchema } from './common.js';

export const TaskTypeSchema = z.enum(['classification', 'multilabel', 'regression']);

export const TaskSchema = z.strictObject({
  name: NameSchema,
  type: TaskTypeSchema.default('classification'),
  /** Static loss weight. @default 1 */
  weight: z.number().positive().max(1000).default(1),
  /** Auxiliary tasks help training; predict leaves them out unless asked. @default false */
  auxiliary: z.boolean().default(false),
  /** Length of a regression target (1 for a scalar). Inferred from the data when absent. */
  size: z.number().int().positive().max(1024).optional(),
});
export type Task = z.infer<typeof TaskSchema>;

/** Hard sharing: one trunk, a head per task. Soft: a tower per task tied by an L2 penalty. */
export const SharingSchema = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('hard'),
    /** Hidden layer sizes of the shared trunk on top of the base embedding. @default [128] */
    trunk: z.array(z.number().int().positive().max(4096)).max(4).default([128]),
  }),
  z.strictObject({
    method: z.literal('soft'),
    /** Hidden layer sizes of each task's tower. @default [128] */
    tower: z.array(z.number().int().positive().max(4096)).min(1).max(4).default([128]),
    /** λ of the penalty λ·Σ‖W_a − W_b‖² between towers (Duong et al., 2015). @default 0.01 */
    l2: z.number().nonnegative().max(100).default(0.01),
  }),
]);
export type Sharing = z.infer<typeof SharingSchema>;

/** How task losses are combined. */
export const LossWeightingSchema = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('static') }),
  /** Kendall, Gal & Cipolla (2018): learned homoscedastic uncertainty per task. */
  z.strictObject({ method: z.literal('uncertainty') }),
  /** Dynamic Weight Averaging (Liu, Johns & Davison, 2019). */
  z.strictObject({ method: z.literal('dwa'), temperature: z.number().positive().default(2) }),
  /**
   * GradNorm (Chen et al., 2018): learned task weights that equalise each task's gradient
   * norm on the last shared layer, scaled by how slowly the task trains. Needs a shared
   * layer that trains (hard sharing with a trunk, or fine-tuned base layers).
   */
  z.strictObject({
    method: z.literal('gradnorm'),
    /** How strongly slow tasks are pulled up (0: equal gradient norms). @default 1.5 */
    alpha: z.number().min(0).max(10).default(1.5),
    /** Step size of the task weights' own gradient descent. @default 0.025 */
    learningRate: z.number().positive().max(10).default(0.025),
  }),
]);
export type LossWeighting = z.infer<typeof LossWeightingSchema>;

export const TrainingOptionsSchema = z.strictObject({
  /**
   * Upper bound; early stopping usually ends sooner. Heads train on cached
   * embeddings, so an epoch costs milliseconds to a second, and small datasets
   * (2 batches an epoch) need many epochs to converge.
   * @default 100
   */
  epochs: z.number().int().min(1).max(1000).default(100),
  /** @default 32 */
  batchSize: z.number().int().min(1).max(1024).default(32),
  /** @default 0.001 */
  learningRate: z.number().positive().max(10).default(0.001),
  /** Epochs without validation improvement before stopping; small validation splits are noisy, so not too few. @default 10 */
  patience: z.number().int().min(1).max(1000).default(10),
  /** Dropout before each head. @default 0.2 */
  dropout: z.number().min(0).max(0.9).default(0.2),
  /** Share of records (by key hash) held out for validation and test. @default 0.15 each */
  validationFraction: z.number().min(0.05).max(0.4).default(0.15),
  testFraction: z.number().min(0.05).max(0.4).default(0.15),
  /** Seed for weight initialisation and shuffling. @default 42 */
  seed: z.number().int().default(42),
  /**
   * Representation search (shared/ml/search.ts): `auto` measures, by cross-validation on
   * the train and validation records, which cut of the base (or the raw pixels) the heads
   * should read, and refits a single-task model on train + validation; `off` keeps the
   * base's embedding layer. A spec with `cut` skips it. @default "auto"
   */
  search: z.enum(['auto', 'off']).default('auto'),
  /** Seconds the search may take. @default 30 per 1,000 train + validation records, at least 10 */
  searchBudgetSeconds: z.number().positive().max(3600).optional(),
});
export type TrainingOptions = z.infer<typeof TrainingOptionsSchema>;

export const FineTuneSchema = z.strictObject({
  /** Number of top base layers (with weights) to unfreeze after the heads converge. */
  layers: z.number().int().min(1).max(200),
  /** @default 0.0001 */
  learningRate: z.number().positive().max(1).default(0.0001),
  /** @default 5 */
  epochs: z.number().int().min(1).max(200).default(5),
});

/**
 * The training spec, `datasets/<dataset>/train.json`. Its upload triggers processing.
 */
export const TrainSpecSchema = z
  .strictObject({
    /** Model to publish to. @default the dataset's name */
    model: NameSchema.optional(),
    input: z
      .strictObject({
        type: z.enum(['image', 'vector']).default('image'),
        /** Vector inputs: the number of features per record. @default the first manifest line's */
        size: z.number().int().positive().max(100_000).optional(),
      })
      .refine((i) => i.type === 'vector' || i.size === undefined, { message: 'size applies to vector inputs only', path: ['size'] })
      .default({ type: 'image' }),
    /** A base model name, `model:<name>[@version]`, or `none`. @default "mobilenet_v2" */
    base: z
      .string()
      .regex(
        /^(none|[a-z0-9][a-z0-9_-]{0,62}|model:[a-z0-9][a-z0-9_-]{0,62}(@v\d{14}-[0-9a-f]{6}|@[a-z0-9_-]+)?)$/i,
        'expected a base model name, "model:<name>[@version]" or "none"',
      )
      .default('mobilenet_v2'),
    /** `prototype` publishes a nearest-class-mean classifier without a training job. @default "train" */
    mode: z.enum(['train', 'prototype']).default('train'),
    /** @default one classification task "class" for a folder-per-label dataset */
    tasks: z
      .array(TaskSchema)
      .min(1, 'a spec needs at least one task')
      .max(32)
      .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, 'task names must be unique')
      .optional(),
    sharing: SharingSchema.default({ method: 'hard', trunk: [128] }),
    lossWeighting: LossWeightingSchema.default({ method: 'static' }),
    training: TrainingOptionsSchema.default(TrainingOptionsSchema.parse({})),
    fineTune: FineTuneSchema.optional(),
    /**
     * Where the pretrained base is cut (a layer, optionally average-pooled), instead of its
     * embedding layer; pins the representation, so the search does not run.
     */
    cut: CutSchema.optional(),
    /** Continual learning: extend `<model>@<version>` with new tasks or classes. */
    from: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,62}@[a-z0-9_-]+$/i)
      .optional(),
    promotion: z.strictObject({ margin: z.number().min(0).max(1).default(0.01) }).default({ margin: 0.01 }),
  })
  .superRefine((s, ctx) => {
    if (!s.cut) return;
    // A concat cut gets its own reason first: fine-tuning needs one tensor to unfreeze above.
    if (s.cut.concat && (s.fineTune || s.base.startsWith('model:'))) {
      const named = `concat of ${[s.cut, ...s.cut.concat].map((c) => c.layer).join(', ')}`;
      ctx.addIssue({
        code: 'custom',
        path: ['cut'],
        message: s.fineTune
          ? `"cut" is a concat cut (${named}): fine-tuning unfreezes the base above one single-tensor cut and cannot train on concatenated features; remove "fineTune" or pin one layer`
          : `"cut" is a concat cut (${named}): it applies to a pretrained base, and a "model:" base is cut at one layer of its model`,
      });
      return;
    }
    if (s.fineTune || s.from || s.base === 'none')
      ctx.addIssue({
        code: 'custom',
        path: ['cut'],
        message:
          '"cut" applies to a frozen pretrained base: not with "fineTune" (which cuts where it unfreezes), "from" (which keeps the extended model\'s cut) or base "none"',
      });
  });
export type TrainSpec = z.infer<typeof TrainSpecSchema>;
export type TrainSpecInput = z.input<typeof TrainSpecSchema>;

/** Tasks of a spec, with the folder-per-label default applied. */
export function tasksOf(spec: TrainSpec): Task[] {
  return spec.tasks ?? [TaskSchema.parse({ name: 'class', type: 'classification' })];
}
