import type { VersionReport } from '../../shared/schemas/version-report.js';

/** A report as the training job writes it (every required field of VersionReportSchema). */
export function sampleReport(model: string, version: string): VersionReport {
  return {
    model,
    version,
    jobId: `train-${model}`,
    createdAt: '2026-01-02T00:00:00.000Z',
    dataset: { name: model, hash: 'h', preparedPrefix: `prepared/${model}/h` },
    base: { name: 'none', embeddingSize: 2 },
    splits: { train: 8, validation: 2, test: 2 },
    tasks: {
      class: {
        type: 'classification',
        auxiliary: false,
        labels: ['a', 'b'],
        labelled: { train: 8, validation: 2, test: 2 },
        test: {
          type: 'classification',
          count: 2,
          accuracy: 0.5,
          macroF1: 0.33,
          perClass: [
            { label: 'a', precision: 0.5, recall: 1, f1: 0.67, support: 1 },
            { label: 'b', precision: 0, recall: 0, f1: 0, support: 1 },
          ],
          confusionMatrix: {
            labels: ['a', 'b'],
            matrix: [
              [1, 0],
              [1, 0],
            ],
          },
        },
      },
    },
    training: {
      plan: 'heads',
      epochs: 2,
      epochsRun: 2,
      bestEpoch: 2,
      stoppedEarly: false,
      history: [
        { loss: 1, val_loss: 1.1 },
        { loss: 0.5, val_loss: 0.7 },
      ],
      sharing: { method: 'hard', trunk: [128] },
      lossWeighting: { method: 'static' },
      taskWeights: { class: 1 },
    },
    transfer: { promotion: { promote: true, reason: 'first version of the model', margin: 0.01, comparisons: [] } },
    timings: { totalMs: 10 },
  };
}
