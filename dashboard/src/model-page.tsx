import { useCallback, useEffect, useState } from 'preact/hooks';
import type { JobStatus } from '../../shared/schemas/job.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import type { VersionReport } from '../../shared/schemas/version-report.js';
import { api, ApiCallError, type DatasetView, type VersionList } from './api.js';
import { ConfusionMatrix } from './confusion-matrix.js';
import { ExportPanel } from './export.js';
import { LearningCurve } from './learning-curve.js';
import { Baselines, Dataset, JobPanel, Leaderboard, Phases, Versions } from './panels.js';
import { TryIt } from './try-it.js';

/** How often the page asks for the job while it runs: the curves are at most this far behind (the issue asks for ≤ 2 s). */
export const POLL_MS = 1500;
/** The versions and the serving metadata are read again every this many polls (about 15 s). */
const VERSIONS_EVERY = 10;

const orUndefined = <T,>(p: Promise<T>): Promise<T | undefined> =>
  p.catch((e: unknown) => {
    if (e instanceof ApiCallError && e.status === 404) return undefined;
    throw e;
  });

/** Tasks of a live history: its `loss_<task>` keys; the model's tasks (or one "all tasks") when the job logs only job-wide figures. */
function tasksOfHistory(history: Array<Record<string, number>>, known: string[]): string[] {
  const names = new Set<string>();
  for (const h of history) for (const k of Object.keys(h)) if (k.startsWith('loss_')) names.add(k.slice(5));
  if (names.size) return [...names];
  return known.length === 1 ? known : ['all tasks'];
}

function Curves({ job, report, known }: { job: JobStatus | undefined; report: VersionReport | undefined; known: string[] }) {
  const live = !!job && (job.state === 'running' || job.state === 'submitted') && (job.history?.length ?? 0) > 0;
  const history = live ? (job.history ?? []) : (report?.training.history ?? []);
  const tasks = live ? tasksOfHistory(history, known) : Object.keys(report?.tasks ?? {});
  if (!history.length)
    return report?.search && report.training.epochsRun === 0 ? (
      <section aria-label="learning curves">
        <h2>Learning curves</h2>
        <p class="muted">No epochs: the search's winning linear model was fitted to its optimum (L-BFGS) on the train and validation records.</p>
      </section>
    ) : null;
  return (
    <section aria-label="learning curves">
      <h2>Learning curves</h2>
      <div class="grid">
        {tasks.map((t) => (
          <LearningCurve key={t} task={t} history={history} single={tasks.length === 1} live={live} />
        ))}
      </div>
    </section>
  );
}

function useModelData(model: string) {
  const [meta, setMeta] = useState<ModelMetadata | undefined>();
  const [job, setJob] = useState<JobStatus | undefined>();
  const [versions, setVersions] = useState<VersionList | undefined>();
  const [error, setError] = useState<string | undefined>();
  const refresh = useCallback(async () => {
    try {
      const [m, v] = await Promise.all([orUndefined(api.model(model)), orUndefined(api.versions(model))]);
      setMeta(m);
      setVersions(v);
    } catch (e) {
      setError(String((e as Error).message));
    }
  }, [model]);
  useEffect(() => {
    let stopped = false;
    let lastState = '';
    let ticks = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const j = await orUndefined(api.job(model));
        if (stopped) return;
        setJob(j);
        const state = `${j?.state}/${j?.version}`;
        // Versions change with a job's end, and now and then from elsewhere (another tab, `tl promote`).
        if (state !== lastState || ++ticks % VERSIONS_EVERY === 0) await refresh();
        lastState = state;
        setError(undefined);
      } catch (e) {
        setError(String((e as Error).message));
      }
      if (!stopped) timer = setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [model]);
  return { meta, job, versions, error, refresh };
}

export function ModelPage({ model }: { model: string }) {
  const { meta, job, versions, error, refresh } = useModelData(model);
  const [picked, setPicked] = useState<string | undefined>();
  const [report, setReport] = useState<VersionReport | undefined>();
  const [dataset, setDataset] = useState<DatasetView | undefined>();
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | undefined>();
  const selected = picked ?? versions?.aliases.latest ?? versions?.versions[0]?.version;

  useEffect(() => {
    if (!selected) return;
    void orUndefined(api.report(model, selected)).then(setReport, () => setReport(undefined));
    void orUndefined(api.dataset(model, selected)).then(setDataset, () => setDataset(undefined));
  }, [model, selected]);

  const act = async (what: () => Promise<{ version: string }>, verb: string) => {
    setBusy(true);
    try {
      const r = await what();
      setNotice(`${verb}: latest now serves ${r.version}`);
      await refresh();
    } catch (e) {
      setNotice(e instanceof ApiCallError ? `${e.message} (${e.code})` : String(e));
    } finally {
      setBusy(false);
    }
  };

  const classification = Object.entries(report?.tasks ?? {}).filter(([, t]) => t.test?.type === 'classification');
  return (
    <main aria-label={`model ${model}`}>
      <p>
        <a href="#/">← all models</a>
      </p>
      <h1>
        Model <span data-testid="model-name">{model}</span>
      </h1>
      {meta ? (
        <p>
          serving <code>{meta.version}</code> · base {meta.base.name} · tasks {meta.tasks.map((t) => `${t.name} (${t.type})`).join(', ')}
        </p>
      ) : (
        <p>No version is serving yet.</p>
      )}
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {notice ? <p role="status">{notice}</p> : null}
      <JobPanel job={job} />
      <Curves job={job} report={report} known={meta?.tasks.map((t) => t.name) ?? []} />
      {classification.map(([task, t]) => (t.test?.type === 'classification' ? <ConfusionMatrix key={task} task={task} metrics={t.test} /> : null))}
      {meta ? <TryIt model={model} input={meta.input} /> : null}
      {versions ? (
        <Versions
          versions={versions}
          selected={selected ?? ''}
          onSelect={setPicked}
          busy={busy}
          onPromote={(v) => void act(() => api.promote(model, v), 'promoted')}
          onRollback={() => void act(() => api.rollback(model), 'rolled back')}
        />
      ) : null}
      {report ? <Leaderboard report={report} /> : null}
      {report ? <Baselines report={report} /> : null}
      {selected && versions?.versions.some((v) => v.version === selected && !v.error) ? <ExportPanel model={model} version={selected} /> : null}
      {report ? <Phases report={report} /> : null}
      <Dataset dataset={dataset} />
    </main>
  );
}
