/**
 * Evaluation figures for classification tasks. Conventions follow scikit-learn's
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
