import { z } from 'zod';

/** One candidate of the representation search (shared/ml/search.ts) and how it scored. */
export const SearchEntrySchema = z.strictObject({
  /** `flatten_1`, `block_13_expand_relu (avg)`, `pixels 32×32×3`, … */
  candidate: z.string(),
  /** Features the heads would read. */
  size: z.number().int(),
  /** Head family scored: `linear` (multinomial logistic regression, L2 grid) or `hidden` (the spec's trunk with dropout, Adam, early stopping on the held-out fold). */
  family: z.enum(['linear', 'hidden']),
  /** Folds this entry was scored on, when not the report's `folds` (the hidden family uses at most 3). */
  folds: z.number().int().optional(),
  /** Hidden family: the epochs the refit trains for (the median of the folds' best epochs). */
  epochs: z.number().int().optional(),
  /** The search's criterion (CV accuracy; multi-task: mean of each task's accuracy over its best), and its sd over folds. */
  cvMean: z.number().optional(),
  cvSd: z.number().optional(),
  /** Per main task: CV accuracy, sd over folds, the λ chosen (linear family). */
  tasks: z.record(z.string(), z.strictObject({ cvMean: z.number(), cvSd: z.number(), l2: z.number().optional() })).optional(),
  /** Seconds to compute the features (when not already computed) and cross-validate. */
  seconds: z.number().optional(),
  chosen: z.boolean(),
  /** Why a candidate has no score (e.g. the time budget was spent), or why its score covers only `folds` folds (stopped: it could not reach the leader). */
  note: z.string().optional(),
});

/** The leaderboard a training job stores in its version report (`search`). */
export const SearchReportSchema = z.strictObject({
  method: z.string(),
  criterion: z.string(),
  /** Records of train + validation the folds were drawn from. */
  records: z.number().int(),
  folds: z.number().int(),
  budgetSeconds: z.number().optional(),
  seconds: z.number(),
  leaderboard: z.array(SearchEntrySchema),
  chosen: z.string(),
  /** One line: what won and what that says about transfer on this data. */
  verdict: z.string(),
  /** How the served model was made from the winner (`refit` of the linear family, or the spec's heads trained on it). */
  model: z.string().optional(),
});
export type SearchReport = z.infer<typeof SearchReportSchema>;
