import type { VersionReport } from '../../shared/schemas/version-report.js';
import { percent } from './format.js';

type Metrics = NonNullable<VersionReport['tasks'][string]['test']>;
type Classification = Extract<Metrics, { type: 'classification' }>;

/** Colour of a cell by the share of its true class (row-normalised): white → blue. */
function shade(share: number): { background: string; color: string } {
  const light = Math.round(97 - share * 55);
  return { background: `hsl(212 80% ${light}%)`, color: light < 62 ? '#fff' : '#111' };
}

/** Confusion matrix of one classification task (rows: true class, columns: predicted), with per-class precision, recall and F1. */
export function ConfusionMatrix({ task, metrics }: { task: string; metrics: Classification }) {
  const { labels, matrix } = metrics.confusionMatrix;
  return (
    <section class="card" aria-label={`confusion matrix of task ${task}`}>
      <h3>
        Task {task}: accuracy {percent(metrics.accuracy)}, macro-F1 {percent(metrics.macroF1)} on {metrics.count} test records
      </h3>
      <div class="matrix-row">
        <table class="matrix" data-testid="confusion-matrix" data-task={task}>
          <caption>rows: true class · columns: predicted class · colour: share of the row</caption>
          <thead>
            <tr>
              <th scope="col">true ↓ · predicted →</th>
              {labels.map((l, j) => (
                <th scope="col" key={j}>
                  {l}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {matrix.map((row, i) => {
              const total = row.reduce((a, b) => a + b, 0);
              return (
                <tr key={i}>
                  <th scope="row">{labels[i]}</th>
                  {row.map((count, j) => {
                    const share = total ? count / total : 0;
                    return (
                      <td
                        key={j}
                        data-testid="matrix-cell"
                        style={shade(share)}
                        title={`${labels[i]} → ${labels[j]}: ${count} (${percent(share)} of ${labels[i]})`}
                      >
                        {count}
                      </td>
                    );
                  })}
                </tr>
              );
            })}
          </tbody>
        </table>
        <table class="per-class">
          <caption>per class, test split</caption>
          <thead>
            <tr>
              <th scope="col">class</th>
              <th scope="col">precision</th>
              <th scope="col">recall</th>
              <th scope="col">F1</th>
              <th scope="col">support</th>
            </tr>
          </thead>
          <tbody>
            {metrics.perClass.map((c) => (
              <tr key={c.label}>
                <th scope="row">{c.label}</th>
                <td>{percent(c.precision)}</td>
                <td>{percent(c.recall)}</td>
                <td>{percent(c.f1)}</td>
                <td>{c.support}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
