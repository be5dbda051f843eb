/**
 * The promotion gate and rollback.
 *
 * A new version moves `latest` only if, on the test split, no task's main
 * metric falls by more than `spec.promotion.margin` below the version it would
 * replace; otherwise it is published as a candidate (alias `candidate`) with the
 * reason, and `latest` keeps serving. Rollback points `latest` back at the
 * version it replaced.
 */
import type { ObjectStore } from '../ports/object-store.js';
import { ModelNotFoundError, readAlias, readMetadata, setAlias } from './registry.js';

/** Alias of the newest version that the gate kept out of `latest`. */
export const CANDIDATE_ALIAS = 'candidate';

/** One task's main metric for the serving version and the candidate, measured on the same records. */
export interface MetricComparison {
  task: string;
  /** Higher is better: accuracy (classification), microF1 (multilabel), r2 (regression). */
  metric: string;
  previous: number;
  candidate: number;
  /** candidate − previous. */
  delta: number;
  /** Which records: `test split of <dataset>`. */
  on: string;
}

export interface PromotionDecision {
  promote: boolean;
  /** One readable sentence: why the version was or was not promoted. */
  reason: string;
  margin: number;
  /** Version `latest` pointed at before (what the candidate was compared with). */
  replaces?: string;
  comparisons: MetricComparison[];
}

const pts = (x: number) => `${(x * 100).toFixed(1)} points`;

export interface DecideOptions {
  /** Why nothing could be compared (said in the reason when comparisons is empty). */
  notCompared?: string;
  /**
   * Neither version has a task the gate can measure: an empty comparison then
   * promotes, saying so. @default false
   */
  unmeasurable?: boolean;
  /** Promote with this explanation when nothing could be compared (and no class is lost). */
  acceptUnmeasured?: string;
  /** Classes of the serving version the new one lacks, per task: refuses unless the margin is 1. */
  lostClasses?: Record<string, string[]>;
}

/**
 * Decides from the comparisons: refuse when any task's metric falls by more
 * than `margin` (a fraction: 0.01 is one point of accuracy). With a version to
 * replace and nothing compared, refuse too: an unmeasured version must not
 * silently replace a measured one.
 */
export function decidePromotion(comparisons: MetricComparison[], margin: number, replaces?: string, opts: DecideOptions = {}): PromotionDecision {
  if (!replaces) return { promote: true, reason: 'first version of the model', margin, comparisons };
  // A tiny tolerance so that floating-point noise at exactly the margin does not refuse.
  const worse = comparisons.filter((c) => c.delta < -margin - 1e-9);
  if (worse.length) {
    const list = worse
      .map((c) => `task "${c.task}" ${c.metric} fell by ${pts(-c.delta)} (${c.previous.toFixed(3)} → ${c.candidate.toFixed(3)} on the ${c.on})`)
      .join('; ');
    return { promote: false, reason: `kept as a candidate, not promoted: ${list}, more than the margin of ${pts(margin)}`, margin, replaces, comparisons };
  }
  // Classes users of `latest` get today must not vanish silently (a margin of 1 accepts anything).
  const lost = Object.entries(opts.lostClasses ?? {});
  if (lost.length && margin < 1) {
    const list = lost.map(([t, l]) => `task "${t}" loses class${l.length === 1 ? '' : 'es'} ${l.map((x) => `"${x}"`).join(', ')}`).join('; ');
    return { promote: false, reason: `kept as a candidate, not promoted: ${list} that ${replaces} predicts`, margin, replaces, comparisons };
  }
  if (comparisons.length === 0) {
    if (opts.acceptUnmeasured)
      return { promote: true, reason: `promoted over ${replaces} without a comparison: ${opts.acceptUnmeasured}`, margin, replaces, comparisons };
    if (opts.unmeasurable)
      return {
        promote: true,
        reason: `promoted over ${replaces} without a comparison: neither version has a task the gate can measure`,
        margin,
        replaces,
        comparisons,
      };
    return {
      promote: false,
      reason: `kept as a candidate, not promoted: it could not be compared with ${replaces} on any test records (${opts.notCompared ?? 'no common test records'})`,
      margin,
      replaces,
      comparisons,
    };
  }
  const summary = comparisons.map((c) => `"${c.task}" ${c.delta >= 0 ? '+' : '−'}${pts(Math.abs(c.delta))} on the ${c.on}`).join(', ');
  return { promote: true, reason: `promoted over ${replaces}: no task fell by more than ${pts(margin)} (${summary})`, margin, replaces, comparisons };
}

/**
 * Publishes a decided version: `latest` when promoted, `candidate` otherwise.
 * The version folder must be complete (metadata.json written) before this.
 */
export async function applyPromotion(store: ObjectStore, model: string, version: string, decision: PromotionDecision): Promise<void> {
  await setAlias(store, model, decision.promote ? 'latest' : CANDIDATE_ALIAS, version);
}

export class NoPreviousVersionError extends Error {
  override name = 'NoPreviousVersionError';
}

/**
 * Points `alias` (default `latest`) back at the version it pointed at before.
 * The rolled-back version becomes the alias' `previous`, so a second call undoes
 * the first.
 * @throws ModelNotFoundError when the model has no such alias.
 * @throws NoPreviousVersionError when there is nothing to roll back to.
 */
export async function rollbackAlias(store: ObjectStore, model: string, alias = 'latest'): Promise<{ model: string; alias: string; from: string; to: string }> {
  const current = await readAlias(store, model, alias);
  if (!current) throw new ModelNotFoundError(`model ${model} has no alias "${alias}"`);
  if (!current.previous) throw new NoPreviousVersionError(`model ${model}: "${alias}" (${current.version}) has no previous version to roll back to`);
  if (!(await readMetadata(store, model, current.previous)))
    throw new NoPreviousVersionError(`model ${model}: the previous version ${current.previous} no longer exists`);
  await setAlias(store, model, alias, current.previous);
  return { model, alias, from: current.version, to: current.previous };
}
