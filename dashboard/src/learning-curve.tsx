import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { number } from './format.js';

type Epoch = Record<string, number>;

interface SeriesSpec {
  key: string;
  label: string;
  stroke: string;
  scale: 'loss' | 'acc';
  dash?: number[];
}

/** Which figures of an epoch belong to a task: per-task keys when the job logs them, the job-wide ones otherwise (single task). */
export function seriesFor(task: string, history: Epoch[], single: boolean): SeriesSpec[] {
  const has = (k: string) => history.some((h) => typeof h[k] === 'number');
  const pick = (perTask: string, whole: string) => (has(perTask) ? perTask : single && has(whole) ? whole : undefined);
  const specs: Array<SeriesSpec | undefined> = [
    ((k) => (k ? { key: k, label: 'training loss', stroke: '#1f6feb', scale: 'loss' as const } : undefined))(pick(`loss_${task}`, 'loss')),
    ((k) => (k ? { key: k, label: 'validation loss', stroke: '#d1242f', scale: 'loss' as const, dash: [6, 4] } : undefined))(
      pick(`val_loss_${task}`, 'val_loss'),
    ),
    ((k) => (k ? { key: k, label: 'training accuracy', stroke: '#1a7f37', scale: 'acc' as const } : undefined))(pick(`acc_${task}`, 'acc')),
    ((k) => (k ? { key: k, label: 'validation accuracy', stroke: '#8250df', scale: 'acc' as const, dash: [6, 4] } : undefined))(
      pick(`val_acc_${task}`, 'val_acc'),
    ),
  ];
  return specs.filter((s): s is SeriesSpec => s !== undefined);
}

/** Loss and accuracy per epoch of one task, drawn by uPlot, with the numbers in a table for screen readers and tests. */
export function LearningCurve({ task, history, single, live }: { task: string; history: Epoch[]; single: boolean; live: boolean }) {
  const el = useRef<HTMLDivElement>(null);
  const specs = seriesFor(task, history, single);
  const epochs = history.map((h, i) => h.epoch ?? i + 1);
  useEffect(() => {
    if (!el.current || !specs.length) return;
    const data: uPlot.AlignedData = [epochs, ...specs.map((s) => history.map((h) => (typeof h[s.key] === 'number' ? h[s.key] : null)))];
    const width = Math.max(280, Math.min(640, el.current.clientWidth || 560));
    const plot = new uPlot(
      {
        width,
        height: 240,
        scales: { x: { time: false }, acc: { range: [0, 1] } },
        axes: [
          { label: 'epoch' },
          { scale: 'loss', label: 'loss' },
          { scale: 'acc', side: 1, label: 'accuracy', grid: { show: false }, values: (_u, v) => v.map((x) => `${Math.round(x * 100)}%`) },
        ],
        series: [
          { label: 'epoch' },
          ...specs.map((s) => ({ label: s.label, stroke: s.stroke, scale: s.scale, dash: s.dash, width: 2, points: { show: true } })),
        ],
      },
      data,
      el.current,
    );
    return () => plot.destroy();
  }, [JSON.stringify(history), task]);
  return (
    <figure class="card curve" data-testid="learning-curve" data-task={task} aria-label={`learning curves of task ${task}`}>
      <figcaption>
        Task <strong>{task}</strong> {live ? <span class="badge live">live</span> : null}
      </figcaption>
      {specs.length ? <div ref={el} class="chart" /> : <p>No figures per epoch were recorded for this task.</p>}
      <details>
        <summary>Numbers per epoch</summary>
        <table class="numbers">
          <thead>
            <tr>
              <th scope="col">epoch</th>
              {specs.map((s) => (
                <th scope="col" key={s.key}>
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {history.map((h, i) => (
              <tr key={i} data-testid="curve-point">
                <td>{epochs[i]}</td>
                {specs.map((s) => (
                  <td key={s.key}>{number(h[s.key])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
