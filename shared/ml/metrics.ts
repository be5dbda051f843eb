/**
 * Evaluation figures per task type. Conventions follow scikit-learn's
 * defaults so figures compare with other tools: precision (recall) of a class
 * with no predicted (true) records is 0, and the macro average runs over the
 * classes that occur in the truth or the predictions.
 */

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** True records of the class. */
  support: number;
}

export interface ClassificationMetrics {
  /** Records evaluated (those with a label for the task). */
  count: number;
  accuracy: number;
  macroF1: number;
  perClass: ClassMetrics[];
  /** matrix[t][p]: records of true class t predicted as p; rows and columns follow `labels`. */
  confusionMatrix: { labels: string[]; matrix: number[][] };
}

/**
 * @param truth class index per record
 * @param predicted class index per record
 * @param labels class names by index
 */
export function classificationMetrics(truth: ArrayLike<number>, predicted: ArrayLike<number>, labels: string[]): ClassificationMetrics {
  if (truth.length !== predicted.length) throw new Error(`${truth.length} true labels but ${predicted.length} predictions`);
  const k = labels.length;
  const matrix = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i];
    const p = predicted[i];
    if (!(t >= 0 && t < k && p >= 0 && p < k)) throw new Error(`class index out of range at record ${i}`);
    matrix[t][p] += 1;
  }
  let correct = 0;
  const perClass = labels.map((label, c) => {
    const tp = matrix[c][c];
    correct += tp;
    const support = matrix[c].reduce((a, b) => a + b, 0);
    const predictedCount = matrix.reduce((a, row) => a + row[c], 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { label, precision, recall, f1, support, present: support > 0 || predictedCount > 0 };
  });
  const present = perClass.filter((c) => c.present);
  return {
    count: truth.length,
    accuracy: truth.length ? correct / truth.length : 0,
    macroF1: present.length ? present.reduce((a, c) => a + c.f1, 0) / present.length : 0,
    perClass: perClass.map(({ present: _p, ...c }) => c),
    confusionMatrix: { labels: [...labels], matrix },
  };
}

export interface LabelMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Records that have the label. */
  support: number;
}

export interface MultilabelMetrics {
  /** Records evaluated (those with a label set for the task). */
  count: number;
  /** F1 of all (record, label) decisions pooled. */
  microF1: number;
  /** Mean F1 over the labels that occur in the truth or the predictions. */
  macroF1: number;
  /** Records whose predicted set equals the true set exactly. */
  subsetAccuracy: number;
  perLabel: LabelMetrics[];
}

const f1Of = (tp: number, fp: number, fn: number) => {
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return { precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0 };
};

/**
 * @param truth count×labels 0/1, row-major
 * @param predicted count×labels 0/1 (scores already compared with the thresholds)
 */
export function multilabelMetrics(truth: ArrayLike<number>, predicted: ArrayLike<number>, labels: string[]): MultilabelMetrics {
  if (truth.length !== predicted.length) throw new Error(`${truth.length} true values but ${predicted.length} predictions`);
  const k = labels.length;
  const count = k ? truth.length / k : 0;
  const tp = new Array<number>(k).fill(0);
  const fp = new Array<number>(k).fill(0);
  const fn = new Array<number>(k).fill(0);
  let exact = 0;
  for (let i = 0; i < count; i++) {
    let same = true;
    for (let j = 0; j < k; j++) {
      const t = truth[i * k + j] >= 0.5;
      const p = predicted[i * k + j] >= 0.5;
      if (t && p) tp[j]++;
      else if (p) fp[j]++;
      else if (t) fn[j]++;
      if (t !== p) same = false;
    }
    if (same) exact++;
  }
  const perLabel = labels.map((label, j) => ({ label, ...f1Of(tp[j], fp[j], fn[j]), support: tp[j] + fn[j], present: tp[j] + fn[j] + fp[j] > 0 }));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const present = perLabel.filter((l) => l.present);
  return {
    count,
    microF1: f1Of(sum(tp), sum(fp), sum(fn)).f1,
    macroF1: present.length ? present.reduce((a, l) => a + l.f1, 0) / present.length : 0,
    subsetAccuracy: count ? exact / count : 0,
    perLabel: perLabel.map(({ present: _p, ...l }) => l),
  };
}

export interface RegressionOutputMetrics {
  mae: number;
  rmse: number;
  /** null with fewer than 2 records: R² needs a variance to compare with. */
  r2: number | null;
}

export interface RegressionMetrics extends RegressionOutputMetrics {
  /** Records evaluated (those with a value for the task). */
  count: number;
  /** Per output of a vector target, in order. */
  perOutput: RegressionOutputMetrics[];
}

/**
 * MAE and RMSE over every value, in the target's real units; R² per output, averaged
 * (scikit-learn's `uniform_average`). An output with no variance in the truth has
 * R² 1 when predicted exactly and 0 otherwise, as scikit-learn reports it; with fewer
 * than 2 records R² is null (scikit-learn warns and returns NaN), not a made-up 0.
 * @param truth count×size row-major
 * @param predicted count×size
 */
export function regressionMetrics(truth: ArrayLike<number>, predicted: ArrayLike<number>, size: number): RegressionMetrics {
  if (truth.length !== predicted.length) throw new Error(`${truth.length} true values but ${predicted.length} predictions`);
  const count = size ? truth.length / size : 0;
  const perOutput: RegressionOutputMetrics[] = [];
  let absAll = 0;
  let sqAll = 0;
  for (let j = 0; j < size; j++) {
    let mean = 0;
    for (let i = 0; i < count; i++) mean += truth[i * size + j];
    mean /= count || 1;
    let abs = 0;
    let sq = 0;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const t = truth[i * size + j];
      const e = predicted[i * size + j] - t;
      abs += Math.abs(e);
      sq += e * e;
      total += (t - mean) ** 2;
    }
    absAll += abs;
    sqAll += sq;
    const r2 = count < 2 ? null : total > 0 ? 1 - sq / total : sq === 0 ? 1 : 0;
    perOutput.push({ mae: count ? abs / count : 0, rmse: count ? Math.sqrt(sq / count) : 0, r2 });
  }
  const n = count * size;
  return {
    count,
    mae: n ? absAll / n : 0,
    rmse: n ? Math.sqrt(sqAll / n) : 0,
    r2: size && count >= 2 ? perOutput.reduce((a, o) => a + (o.r2 ?? 0), 0) / size : null,
    perOutput,
  };
}
