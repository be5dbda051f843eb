/**
 * A model card (Mitchell et al., 2019, "Model Cards for Model Reporting") for a
 * published version, in markdown: the data, the base and cut, the tasks, test
 * metrics per task and class, the from-scratch baseline, the promotion verdict,
 * intended use and known limits. Built from metadata.json and, when the version
 * was trained by a job, its report.json; nothing is invented where they are silent.
 */
import { readJsonIfExists, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata } from '../schemas/model.js';
import { VersionReportSchema, type VersionReport } from '../schemas/version-report.js';
import type { TaskMetricsRecord } from '../schemas/metrics.js';
import { versionPrefix } from './registry.js';
import { cutParts, isConcatCut, type EmbeddingCut } from '../ml/cuts.js';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const num = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3));

function metricsLines(name: string, m: TaskMetricsRecord): string[] {
  if (m.type === 'classification') {
    return [
      `Test accuracy ${pct(m.accuracy)}, macro F1 ${pct(m.macroF1)} on ${m.count} records.`,
      '',
      '| class | precision | recall | F1 | test records |',
      '| --- | --- | --- | --- | --- |',
      ...m.perClass.map((c) => `| ${c.label} | ${pct(c.precision)} | ${pct(c.recall)} | ${pct(c.f1)} | ${c.support} |`),
    ];
  }
  if (m.type === 'multilabel') {
    return [
      `Test micro F1 ${pct(m.microF1)}, macro F1 ${pct(m.macroF1)}, subset accuracy ${pct(m.subsetAccuracy)} on ${m.count} records.`,
      '',
      '| label | precision | recall | F1 | positives |',
      '| --- | --- | --- | --- | --- |',
      ...m.perLabel.map((c) => `| ${c.label} | ${pct(c.precision)} | ${pct(c.recall)} | ${pct(c.f1)} | ${c.support} |`),
    ];
  }
  return [`Test MAE ${num(m.mae)}, RMSE ${num(m.rmse)}${m.r2 === null ? '' : `, R² ${num(m.r2)}`} on ${m.count} records (task ${name}).`];
}

function taskSection(meta: ModelMetadata, report: VersionReport | undefined): string[] {
  const lines: string[] = ['## Tasks and test metrics', ''];
  for (const task of meta.tasks) {
    lines.push(`### ${task.name} (${task.type}${task.auxiliary ? ', auxiliary' : ''})`, '');
    if (task.labels) lines.push(`Labels: ${task.labels.join(', ')}.`, '');
    const r = report?.tasks[task.name];
    if (r)
      lines.push(
        `Labelled records: ${Object.entries(r.labelled)
          .map(([s, n]) => `${s} ${n}`)
          .join(', ')}.`,
        '',
      );
    if (r?.test) lines.push(...metricsLines(task.name, r.test), '');
    else lines.push(meta.kind === 'prototype' ? 'Few-shot prototypes: no held-out test split.' : 'No labelled test records.', '');
  }
  return lines;
}

/** `, cut at `layer` (average-pooled)`, or the parts of a concat cut in the order the model reads them. */
function cutWords(cut: EmbeddingCut): string {
  const part = (p: { layer: string; pooling: string }) => `\`${p.layer}\`${p.pooling === 'avg' ? ' (average-pooled)' : ''}`;
  if (!isConcatCut(cut)) return `, cut at ${part(cut)}`;
  return `, cut at several layers of one pass, concatenated in this order: ${cutParts(cut).map(part).join(', ')}`;
}

/** The card of one version, as markdown. */
export async function buildModelCard(store: ObjectStore, meta: ModelMetadata): Promise<string> {
  const report =
    meta.kind === 'train'
      ? await readJsonIfExists(store, `${versionPrefix(meta.model, meta.version)}/report.json`, VersionReportSchema).catch(() => undefined)
      : undefined;
  const metrics = meta.metrics as { baseline?: { verdict?: string }; promotion?: { promote?: boolean; reason?: string } };
  const input =
    meta.input.type === 'image'
      ? `images, resized to ${meta.input.shape[0]}×${meta.input.shape[1]}×${meta.input.shape[2]}`
      : `vectors of ${meta.input.size} numbers`;
  const cut = meta.base.cut ? cutWords(meta.base.cut) : '';
  return [
    `# Model card: ${meta.model} @ ${meta.version}`,
    '',
    `Created ${meta.createdAt}${meta.jobId ? ` by job ${meta.jobId}` : ''}; ${meta.kind === 'prototype' ? 'a few-shot prototype (nearest class mean) model' : 'trained heads on a frozen base'}.`,
    '',
    '## Data',
    '',
    `Dataset \`${meta.dataset.name}\`, content hash \`${meta.dataset.hash}\`; input: ${input}.`,
    ...(report
      ? [
          '',
          `Records per split: ${Object.entries(report.splits)
            .map(([s, n]) => `${s} ${n}`)
            .join(', ')}.`,
        ]
      : []),
    '',
    '## Base',
    '',
    `\`${meta.base.name}\`${cut}${meta.base.embeddingSize ? `, ${meta.base.embeddingSize}-d embedding` : ''}${meta.base.engine ? `; frozen part run on ${meta.base.engine}` : ''}.`,
    '',
    ...taskSection(meta, report),
    '## Baseline and promotion',
    '',
    metrics.baseline?.verdict ?? 'No from-scratch baseline was recorded for this version.',
    '',
    metrics.promotion
      ? `Promotion: ${metrics.promotion.promote ? 'promoted' : 'not promoted'} (${metrics.promotion.reason ?? 'no reason recorded'}).`
      : 'No promotion verdict recorded.',
    '',
    '## Intended use and known limits',
    '',
    `Intended for inputs like those of dataset \`${meta.dataset.name}\`: the metrics above hold for its test split only.`,
    'Images are resized without cropping; inputs far from the training data (other cameras, lighting, subjects) may score confidently and wrongly.',
    meta.base.name === 'mobilenet_v2'
      ? 'The base is a MobileNetV2 whose features were trained by the nsfwjs authors for their own five classes: they transfer best to photos.'
      : '',
    'Classification scores are model outputs, not calibrated probabilities.',
    '',
  ].join('\n');
}
