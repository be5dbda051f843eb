/** The smaller panels of the model page: the job, the versions, baselines and the dataset. */
import type { JobStatus } from '../../shared/schemas/job.js';
import type { VersionReport } from '../../shared/schemas/version-report.js';
import type { DatasetView, VersionList } from './api.js';
import { duration, metric, percent, when } from './format.js';

export function JobPanel({ job }: { job: JobStatus | undefined }) {
  if (!job) return <section class="card">No training job recorded for this model.</section>;
  return (
    <section class="card" data-testid="job" aria-label="latest training job">
      <h2>Latest job</h2>
      <p>
        <span class={`badge state-${job.state}`} data-testid="job-state">
          {job.state}
        </span>{' '}
        {job.phase ? <span>phase {job.phase}</span> : null} {job.epoch !== undefined && job.epochs ? `· epoch ${job.epoch} of ${job.epochs}` : null}
      </p>
      <progress max={1} value={job.progress} aria-label="job progress">
        {percent(job.progress)}
      </progress>{' '}
      {percent(job.progress)}
      {job.error ? (
        <p class="error" role="alert">
          <code>{job.error.code}</code> {job.error.message}
        </p>
      ) : null}
      {job.promotionReason ? <p>Promotion: {job.promotionReason}</p> : null}
      {job.records && job.records.skipped > 0 ? (
        <p>
          {job.records.skipped} of {job.records.total} files skipped
        </p>
      ) : null}
      <p class="muted">
        job {job.jobId} · started {when(job.createdAt)} · updated {when(job.updatedAt)}
      </p>
    </section>
  );
}

export function Versions(props: {
  versions: VersionList;
  selected: string;
  onSelect: (v: string) => void;
  onPromote: (v: string) => void;
  onRollback: () => void;
  busy: boolean;
}) {
  const { versions, selected } = props;
  return (
    <section class="card" aria-label="versions">
      <h2>Versions</h2>
      <button type="button" onClick={props.onRollback} disabled={props.busy} data-testid="rollback">
        Roll back latest
      </button>
      <table>
        <thead>
          <tr>
            <th scope="col">version</th>
            <th scope="col">created</th>
            <th scope="col">aliases</th>
            <th scope="col">test metrics</th>
            <th scope="col">actions</th>
          </tr>
        </thead>
        <tbody>
          {versions.versions.map((v) => (
            <tr key={v.version} data-testid="version-row" class={v.version === selected ? 'selected' : ''}>
              <td>
                <button type="button" class="link" onClick={() => props.onSelect(v.version)} aria-pressed={v.version === selected}>
                  {v.version}
                </button>
              </td>
              <td>{when(v.createdAt)}</td>
              <td>
                {v.aliases.map((a) => (
                  <span key={a} class={`badge alias-${a}`}>
                    {a}
                  </span>
                ))}
              </td>
              <td>
                {v.error ? (
                  <span class="error">{v.error.code}</span>
                ) : (
                  Object.entries(v.headline ?? {}).map(([t, m]) => <div key={t}>{`${t}: ${metric(m)}`}</div>)
                )}
              </td>
              <td>
                {v.aliases.includes('latest') ? null : (
                  <button type="button" onClick={() => props.onPromote(v.version)} disabled={props.busy} data-testid="promote">
                    Promote
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {versions.total > versions.versions.length ? (
        <p class="muted">
          newest {versions.versions.length} of {versions.total} shown
        </p>
      ) : null}
    </section>
  );
}

/** The representation search's leaderboard: which input the model reads, and how every candidate scored. */
export function Leaderboard({ report }: { report: VersionReport }) {
  const search = report.search;
  if (!search) return report.searchSkipped ? <p class="muted">Representation search skipped: {report.searchSkipped}.</p> : null;
  return (
    <section class="card" aria-label="representation search">
      <h2>Which representation?</h2>
      <table data-testid="leaderboard">
        <caption>
          {search.criterion}, {search.folds}-fold cross-validation on {search.records} train + validation records ({search.seconds.toFixed(1)} s)
        </caption>
        <thead>
          <tr>
            <th scope="col">candidate</th>
            <th scope="col">head</th>
            <th scope="col">features</th>
            <th scope="col">CV mean ± sd</th>
            <th scope="col">seconds</th>
          </tr>
        </thead>
        <tbody>
          {search.leaderboard.map((e) => (
            <tr key={`${e.candidate}/${e.family}`} class={e.chosen ? 'chosen' : undefined}>
              <th scope="row">
                {e.candidate}
                {e.chosen ? ' (chosen)' : ''}
              </th>
              <td>{e.family === 'linear' ? 'linear (L2)' : `hidden layer${e.folds ? `, ${e.folds}-fold` : ''}${e.epochs ? `, ${e.epochs} epochs` : ''}`}</td>
              <td>{e.size}</td>
              <td>
                {e.cvMean === undefined ? (e.note ?? '–') : `${percent(e.cvMean)} ± ${percent(e.cvSd ?? 0)}`}
                {/* Multi-task: the criterion is a ratio; each task's own CV accuracy says what it means. */}
                {e.tasks && Object.keys(e.tasks).length > 1 ? (
                  <small class="muted" data-testid="task-scores">
                    {' '}
                    (
                    {Object.entries(e.tasks)
                      .map(([task, v]) => `${task} ${percent(v.cvMean)}`)
                      .join(', ')}
                    )
                  </small>
                ) : null}
                {/* A candidate stopped early (it could not reach the leader) has a score over the folds it ran, and says so. */}
                {e.cvMean !== undefined && e.note ? (
                  <small class="muted" data-testid="search-note">
                    {' '}
                    ({e.note})
                  </small>
                ) : null}
              </td>
              <td>{e.seconds === undefined ? '–' : e.seconds.toFixed(1)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>{search.verdict}</p>
    </section>
  );
}

export function Baselines({ report }: { report: VersionReport }) {
  const { baseline, fineTune, promotion } = report.transfer;
  const sharing = report.sharingComparison ?? {};
  return (
    <section class="card" aria-label="baselines">
      <h2>Did transfer and sharing help?</h2>
      {baseline ? (
        <table>
          <caption>Transfer vs {baseline.method} (test accuracy)</caption>
          <thead>
            <tr>
              <th scope="col">task</th>
              <th scope="col">transfer</th>
              <th scope="col">baseline</th>
              <th scope="col">difference</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(baseline.tasks).map(([t, r]) => (
              <tr key={t}>
                <th scope="row">{t}</th>
                <td>{percent(r.transfer)}</td>
                <td>{percent(r.baseline)}</td>
                <td>{percent(r.difference)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">No from-scratch baseline was trained for this version.</p>
      )}
      {baseline ? <p>{baseline.verdict}</p> : null}
      {Object.keys(sharing).length ? (
        <table>
          <caption>Multi-task vs single-task</caption>
          <thead>
            <tr>
              <th scope="col">task</th>
              <th scope="col">metric</th>
              <th scope="col">with sharing</th>
              <th scope="col">single-task</th>
              <th scope="col">better</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(sharing).map(([t, c]) => (
              <tr key={t}>
                <th scope="row">{t}</th>
                <td>{c.metric}</td>
                <td>{c.withSharing ?? '–'}</td>
                <td>{c.withoutSharing ?? '–'}</td>
                <td>{c.better ?? '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {fineTune ? (
        <p>
          Fine-tuning {fineTune.layers.join(', ')}:{' '}
          {Object.entries(fineTune.test)
            .map(([t, r]) => `${t} ${percent(r.before)} → ${percent(r.after)}`)
            .join('; ')}
        </p>
      ) : null}
      <p>
        <strong>{promotion.promote ? 'Promoted' : 'Not promoted'}:</strong> {promotion.reason}
      </p>
    </section>
  );
}

export function Phases({ report }: { report: VersionReport }) {
  const stages = Object.entries(report.timings).filter(([k]) => k !== 'totalMs');
  return (
    <section class="card" aria-label="phases">
      <h2>Phases of the job that made this version</h2>
      <ol class="phases">
        {stages.map(([k, ms]) => (
          <li key={k}>
            {k.replace(/Ms$/, '')}: {duration(ms)}
          </li>
        ))}
      </ol>
      <p>
        total {duration(report.timings.totalMs)} · plan {report.training.plan} · {report.training.epochsRun} of {report.training.epochs} epochs, best{' '}
        {report.training.bestEpoch}
        {report.training.stoppedEarly ? ' (stopped early)' : ''}
      </p>
    </section>
  );
}

export function Dataset({ dataset }: { dataset: DatasetView | undefined }) {
  if (!dataset) return null;
  return (
    <section class="card" aria-label="dataset" data-testid="dataset">
      <h2>Dataset {dataset.dataset}</h2>
      <p>
        {dataset.records.used} of {dataset.records.total} files used · train {dataset.splits.train ?? 0} · validation {dataset.splits.validation ?? 0} · test{' '}
        {dataset.splits.test ?? 0}
      </p>
      {Object.entries(dataset.tasks).map(([task, t]) =>
        t.classes ? (
          <table key={task}>
            <caption>Task {task}: records per class</caption>
            <tbody>
              {Object.entries(t.classes).map(([label, n]) => (
                <tr key={label}>
                  <th scope="row">{label}</th>
                  <td>{n}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null,
      )}
      {dataset.skipped.length ? (
        <details open={dataset.skipped.length <= 5}>
          <summary>{dataset.records.skipped === 1 ? '1 file skipped' : `${dataset.records.skipped} files skipped`}</summary>
          <ul data-testid="skipped">
            {dataset.skipped.map((s) => (
              <li key={s.key}>
                <code>{s.key}</code>: {s.reason}
              </li>
            ))}
          </ul>
        </details>
      ) : (
        <p>No file was skipped.</p>
      )}
    </section>
  );
}
