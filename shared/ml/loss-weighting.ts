/**
 * How task losses are combined, one small strategy per `lossWeighting.method`.
 * A strategy returns the weight of each task's loss; state (for learned or
 * dynamic weightings) is passed in explicitly, never kept in the strategy.
 * Only `static` exists yet: the spec's per-task `weight`.
 */
import type { LossWeighting } from '../schemas/spec.js';

export interface WeightedTask {
  name: string;
  /** Static weight from the spec. @default 1 */
  weight?: number;
}

export interface LossWeightingStrategy<W extends LossWeighting = LossWeighting> {
  /** Weights per task name, fixed for the whole fit. */
  initialWeights(tasks: WeightedTask[], config: W): Record<string, number>;
}

export class UnsupportedLossWeightingError extends Error {
  override name = 'UnsupportedLossWeightingError';
}

const notYet = (method: string): LossWeightingStrategy => ({
  initialWeights() {
    throw new UnsupportedLossWeightingError(`loss weighting "${method}" is not supported yet; use {"method": "static"}`);
  },
});

export const LOSS_WEIGHTINGS: { [M in LossWeighting['method']]: LossWeightingStrategy<Extract<LossWeighting, { method: M }>> } = {
  static: { initialWeights: (tasks) => Object.fromEntries(tasks.map((t) => [t.name, t.weight ?? 1])) },
  uncertainty: notYet('uncertainty'),
  dwa: notYet('dwa'),
};

export function lossWeightsFor(config: LossWeighting, tasks: WeightedTask[]): Record<string, number> {
  return (LOSS_WEIGHTINGS[config.method] as LossWeightingStrategy).initialWeights(tasks, config);
}
