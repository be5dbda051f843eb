/**
 * How task losses are combined, one small strategy per `lossWeighting.method`.
 *
 * A strategy is stateless: for one fit it creates a `LossCombiner` that holds that
 * fit's state (learned log-variances, past epoch losses). The state goes in and out
 * explicitly as JSON (`WeightingState`), so a checkpoint can carry it and a resumed
 * fit continues with the same weights.
 *
 * Every strategy multiplies by the spec's static per-task `weight`, so a user can
 * still down-weight an auxiliary task under a learned or dynamic weighting.
 */
import type { Scalar, Variable } from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { WeightingStateSchema } from '../schemas/checkpoint.js';
import type { LossWeighting } from '../schemas/spec.js';
import type { Tf } from '../tf/loader.js';
import type { TaskType } from './task-kinds.js';
import { UserError } from '../errors.js';

export interface WeightedTask {
  name: string;
  /** Static weight from the spec. @default 1 */
  weight?: number;
  /** Uncertainty weighting scales regression and classification losses differently. @default "classification" */
  type?: TaskType;
}

/** Per task, on one batch, measured before the step: what GradNorm learns from. */
export interface SharedGradients {
  /** ‖∇_W L_t‖₂ over the last shared layer's weights W (unweighted loss). */
  gradNorms: Record<string, number>;
  /** L_t, the task's masked mean loss. */
  losses: Record<string, number>;
  /** Whether the batch labels the task (a task without labels has loss and gradient 0 and sits this step out). */
  labelled: Record<string, boolean>;
}

/** What a combiner needs to continue where a checkpoint left off; JSON only (schema in shared/schemas/checkpoint.ts). */
export type WeightingState = z.infer<typeof WeightingStateSchema>;

/** One fit's loss combination. */
export interface LossCombiner {
  /** Trainable variables the optimizer updates along with the model (uncertainty's log-variances). */
  readonly variables: Variable[];
  /**
   * The objective of one batch from each task's masked mean loss; called inside the
   * gradient scope. `counts` holds each task's labelled records in the batch: a task
   * with none contributes nothing, not even a regulariser. @default every task labelled
   */
  combine(tf: Tf, losses: Record<string, Scalar>, counts?: Record<string, Scalar>): Scalar;
  /** After each epoch, with the mean training loss per task over that epoch. */
  endEpoch(epochLosses: Record<string, number>): void;
  /**
   * Present when the weighting learns from gradients on the last shared layer
   * (GradNorm): the training loop then measures them before each step and calls
   * this after the step.
   */
  afterBatch?(batch: SharedGradients): void;
  /** The effective weight of each task's loss now. */
  weights(): Record<string, number>;
  state(): WeightingState;
  dispose(): void;
}

export interface LossWeightingStrategy<W extends LossWeighting = LossWeighting> {
  create(ctx: { tf: Tf; tasks: WeightedTask[]; resume?: WeightingState }, config: W): LossCombiner;
}

export class UnsupportedLossWeightingError extends UserError {
  override name = 'UnsupportedLossWeightingError';
  constructor(message: string) {
    super('UNSUPPORTED_SPEC', message);
  }
}

const staticWeights = (tasks: WeightedTask[]) => Object.fromEntries(tasks.map((t) => [t.name, t.weight ?? 1]));

/** A fixed weight per task: Σ w_t·L_t. */
function fixedCombiner(weightsNow: () => Record<string, number>, extra: Partial<LossCombiner> = {}): LossCombiner {
  return {
    variables: [],
    combine(tf, losses) {
      const w = weightsNow();
      return tf.addN(Object.entries(losses).map(([name, l]) => tf.mul(l, w[name] ?? 1))) as Scalar;
    },
    endEpoch() {},
    weights: weightsNow,
    state: () => ({}),
    dispose() {},
    ...extra,
  };
}

/** The spec's per-task weights, fixed for the whole fit. */
export const staticWeighting: LossWeightingStrategy<Extract<LossWeighting, { method: 'static' }>> = {
  create: ({ tasks }) => {
    const w = staticWeights(tasks);
    return fixedCombiner(() => ({ ...w }));
  },
};

/**
 * Uncertainty weighting (Kendall, Gal & Cipolla, 2018): each task learns s_t = log σ_t²
 * and the objective is Σ_t c_t·exp(−s_t)·L_t + s_t/2, with c_t = 1/2 for regression
 * (a Gaussian likelihood) and 1 for classification (a softmax/sigmoid likelihood). A
 * noisy or hard task raises its σ and so lowers its own weight; s_t/2 stops every σ
 * from growing without bound.
 *
 * A task without a label in the batch drops its whole term: its masked loss is 0 there,
 * and s_t/2 alone would push s_t down on every such batch, so a sparse task's weight
 * exp(−s_t) would grow without bound.
 */
export const uncertaintyWeighting: LossWeightingStrategy<Extract<LossWeighting, { method: 'uncertainty' }>> = {
  create({ tf, tasks, resume }) {
    const fixed = staticWeights(tasks);
    const scale = Object.fromEntries(tasks.map((t) => [t.name, t.type === 'regression' ? 0.5 : 1]));
    // tidy frees the initial scalars; the variables themselves outlive it until dispose().
    const logVars = Object.fromEntries(
      tasks.map((t) => [t.name, tf.tidy(() => tf.variable(tf.scalar(resume?.logVariances?.[t.name] ?? 0), true, undefined, 'float32'))]),
    );
    const read = () => Object.fromEntries(Object.entries(logVars).map(([name, v]) => [name, (v.dataSync() as Float32Array)[0]]));
    return {
      variables: Object.values(logVars),
      combine(tf_, losses, counts) {
        const terms = Object.entries(losses).map(([name, l]) => {
          const s = logVars[name];
          const term = tf_.mul(tf_.add(tf_.mul(tf_.mul(tf_.exp(tf_.neg(s)), l), scale[name]), tf_.mul(s, 0.5)), fixed[name]);
          // 1 when the batch labels the task, 0 when not (counts are whole numbers).
          return counts?.[name] ? tf_.mul(term, tf_.minimum(counts[name], 1)) : term;
        });
        return tf_.addN(terms) as Scalar;
      },
      endEpoch() {},
      weights: () => Object.fromEntries(Object.entries(read()).map(([name, s]) => [name, fixed[name] * scale[name] * Math.exp(-s)])),
      state: () => ({ logVariances: read() }),
      dispose: () => Object.values(logVars).forEach((v) => v.dispose()),
    };
  },
};

/**
 * Dynamic Weight Averaging (Liu, Johns & Davison, 2019): a task whose loss fell
 * slowly over the last epoch gets more weight in the next,
 * w_t = K·exp(r_t/T) / Σ_i exp(r_i/T) with r_t = L_t(e−1) / L_t(e−2) and K tasks;
 * the first two epochs use w_t = 1.
 */
export const dwaWeighting: LossWeightingStrategy<Extract<LossWeighting, { method: 'dwa' }>> = {
  create({ tasks, resume }, config) {
    const fixed = staticWeights(tasks);
    const history: Array<Record<string, number>> = [...(resume?.epochLosses ?? [])].slice(-2);
    const weightsNow = () => {
      if (history.length < 2) return { ...fixed };
      const [before, last] = history.slice(-2);
      const r = tasks.map((t) => (before[t.name] > 0 ? last[t.name] / before[t.name] : 1));
      const e = r.map((x) => Math.exp(x / config.temperature));
      const sum = e.reduce((a, b) => a + b, 0);
      return Object.fromEntries(tasks.map((t, i) => [t.name, fixed[t.name] * ((tasks.length * e[i]) / sum)]));
    };
    return fixedCombiner(weightsNow, {
      endEpoch(losses) {
        history.push({ ...losses });
        if (history.length > 2) history.shift();
      },
      state: () => ({ epochLosses: history.map((h) => ({ ...h })) }),
    });
  },
};

const MIN_GRADNORM_WEIGHT = 1e-3;

export interface GradNormStepInput {
  /** Current w_t of every task (they sum to the number of tasks). */
  weights: Record<string, number>;
  /** L_t(0) of each task. */
  initialLosses: Record<string, number>;
  batch: SharedGradients;
  alpha: number;
  learningRate: number;
}

/**
 * One GradNorm update of the task weights (Chen et al., 2018, eqs. 1–2): over the
 * tasks the batch labels, G_t = w_t·‖∇_W L_t‖, Ḡ their mean, L̃_t = L_t / L_t(0),
 * r_t = L̃_t / mean(L̃) and the target G_t* = Ḡ·r_t^α, held constant. The
 * gradient-norm loss Σ|G_t − G_t*| is differentiated with respect to w_t only; since
 * G_t = w_t·‖∇_W L_t‖ its derivative has the closed form sign(G_t − G_t*)·‖∇_W L_t‖,
 * used here instead of a second-order gradient through tfjs (same value, one backward
 * pass per task instead of a gradient of a gradient). Plain gradient descent with the
 * weighting's own learning rate, then every weight is kept positive and the weights
 * renormalised to sum to the number of tasks, as the paper does after each step.
 * Fewer than two labelled tasks leave the weights as they are (nothing to balance).
 */
export function gradNormStep(input: GradNormStepInput): Record<string, number> {
  const names = Object.keys(input.weights);
  const active = names.filter((n) => input.batch.labelled[n] && input.initialLosses[n] > 0 && Number.isFinite(input.batch.gradNorms[n]));
  const next = { ...input.weights };
  if (active.length >= 2) {
    const g = active.map((n) => input.weights[n] * input.batch.gradNorms[n]);
    const gMean = g.reduce((a, b) => a + b, 0) / active.length;
    const ratio = active.map((n) => input.batch.losses[n] / input.initialLosses[n]);
    const ratioMean = ratio.reduce((a, b) => a + b, 0) / active.length;
    active.forEach((n, i) => {
      const target = gMean * Math.pow(ratioMean > 0 ? ratio[i] / ratioMean : 1, input.alpha);
      const grad = Math.sign(g[i] - target) * input.batch.gradNorms[n];
      // Kept positive: a weight at 0 would stop the task's gradient, and with it its G_t, for good.
      next[n] = Math.max(input.weights[n] - input.learningRate * grad, MIN_GRADNORM_WEIGHT);
    });
  }
  const sum = names.reduce((a, n) => a + next[n], 0);
  return Object.fromEntries(names.map((n) => [n, (next[n] * names.length) / sum]));
}

/**
 * GradNorm (Chen et al., 2018): learned weights w_t, updated after every batch by
 * `gradNormStep` from the gradient norms the training loop measures on the last
 * shared layer. The objective is Σ_t c_t·w_t·L_t with c_t the spec's static weight;
 * G_t leaves c_t out, so balancing the gradients does not undo a user's down-weighting.
 * A single task keeps w = 1, and the loop then measures nothing.
 */
export const gradNormWeighting: LossWeightingStrategy<Extract<LossWeighting, { method: 'gradnorm' }>> = {
  create({ tasks, resume }, config) {
    const fixed = staticWeights(tasks);
    const learned: Record<string, number> = Object.fromEntries(tasks.map((t) => [t.name, resume?.taskWeights?.[t.name] ?? 1]));
    const initialLosses: Record<string, number> = { ...(resume?.initialLosses ?? {}) };
    const weightsNow = () => Object.fromEntries(tasks.map((t) => [t.name, fixed[t.name] * learned[t.name]]));
    const combiner = fixedCombiner(weightsNow, {
      state: () => ({ taskWeights: { ...learned }, initialLosses: { ...initialLosses } }),
    });
    if (tasks.length < 2) return combiner;
    return {
      ...combiner,
      afterBatch(batch) {
        for (const t of tasks)
          if (batch.labelled[t.name] && !(initialLosses[t.name] > 0) && batch.losses[t.name] > 0) initialLosses[t.name] = batch.losses[t.name];
        Object.assign(learned, gradNormStep({ weights: learned, initialLosses, batch, alpha: config.alpha, learningRate: config.learningRate }));
      },
    };
  },
};

export const LOSS_WEIGHTINGS: { [M in LossWeighting['method']]: LossWeightingStrategy<Extract<LossWeighting, { method: M }>> } = {
  static: staticWeighting,
  uncertainty: uncertaintyWeighting,
  dwa: dwaWeighting,
  gradnorm: gradNormWeighting,
};

/** Creates the combiner of `config` for one fit. */
export function createLossCombiner(tf: Tf, config: LossWeighting, tasks: WeightedTask[], resume?: WeightingState): LossCombiner {
  const strategy = LOSS_WEIGHTINGS[config.method] as LossWeightingStrategy | undefined;
  if (!strategy)
    throw new UnsupportedLossWeightingError(`unknown loss weighting "${(config as { method: string }).method}"; use static, uncertainty, dwa or gradnorm`);
  return strategy.create({ tf, tasks, resume }, config);
}

/**
 * The weights each task's loss starts with under `config` (the spec's static weights;
 * uncertainty starts from σ = 1, DWA and GradNorm from 1 each).
 */
export function lossWeightsFor(config: LossWeighting, tasks: WeightedTask[]): Record<string, number> {
  if (!LOSS_WEIGHTINGS[config.method])
    throw new UnsupportedLossWeightingError(`unknown loss weighting "${(config as { method: string }).method}"; use static, uncertainty, dwa or gradnorm`);
  const fixed = staticWeights(tasks);
  if (config.method !== 'uncertainty') return fixed;
  return Object.fromEntries(tasks.map((t) => [t.name, fixed[t.name] * (t.type === 'regression' ? 0.5 : 1)]));
}
