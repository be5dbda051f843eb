/**
 * The dashboard: sign-in with the tenant's API key (kept in sessionStorage only),
 * the models list and a page per model. Routes live in the URL's hash
 * (`#/models/<name>`), which never carries the key.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { api, ApiCallError, call, session, setApiBase, type ModelSummary } from './api.js';
import { metric, percent } from './format.js';
import { ModelPage } from './model-page.js';
import { UploadPage } from './upload.js';

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>();
  const signIn = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const trimmed = key.trim();
    try {
      // Check the key before keeping it, so a typo says so at once.
      await call('/models', { key: trimmed });
      session.signIn(trimmed);
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiCallError ? `${err.message} (${err.code})` : `cannot reach the platform: ${String(err)}`);
    }
  };
  return (
    <main class="signin">
      <h1>Transfer-learning platform</h1>
      <form onSubmit={(e) => void signIn(e)}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          data-testid="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          required
        />
        <button type="submit" data-testid="sign-in">
          Sign in
        </button>
      </form>
      <p class="muted">The key stays in this tab (sessionStorage) and goes only into the x-api-key header. The local platform prints it at start.</p>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
    </main>
  );
}

function ModelsList() {
  const [models, setModels] = useState<ModelSummary[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    let stopped = false;
    const load = () =>
      api.models().then(
        (r) => !stopped && setModels(r.models),
        (e: Error) => !stopped && setError(e.message),
      );
    void load();
    const timer = setInterval(() => void load(), 5000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <main>
      <h1>Models</h1>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {models && !models.length ? <p>No models yet: upload a dataset with `tl upload`.</p> : null}
      <div class="scroll">
        <table class="models">
          <thead>
            <tr>
              <th scope="col">model</th>
              <th scope="col">serving version</th>
              <th scope="col">tasks</th>
              <th scope="col">test metric</th>
              <th scope="col">latest job</th>
            </tr>
          </thead>
          <tbody>
            {(models ?? []).map((m) => (
              <tr key={m.model} data-testid="model-row" data-model={m.model}>
                <td>
                  <a href={`#/models/${encodeURIComponent(m.model)}`}>{m.model}</a>
                </td>
                <td>{m.error ? <span class="error">{m.error.code}</span> : <code>{m.version}</code>}</td>
                <td>{(m.tasks ?? []).map((t) => t.name).join(', ')}</td>
                <td>
                  {Object.entries(m.headline ?? {})
                    .map(([t, h]) => `${t}: ${metric(h)}`)
                    .join(' · ') || '–'}
                </td>
                <td>
                  {m.job
                    ? `${m.job.state}${m.job.state === 'running' ? ` ${percent(m.job.progress)}` : ''}${m.job.error ? ` (${m.job.error.code})` : ''}`
                    : '–'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </main>
  );
}

function useHashRoute(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const [signedIn, setSignedIn] = useState(() => !!session.key());
  const hash = useHashRoute();
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  const model = /^#\/models\/([^/]+)$/.exec(hash)?.[1];
  return (
    <>
      <header class="top">
        <nav>
          <a href="#/">Models</a> · <a href="#/upload">Upload</a>
        </nav>
        <button
          type="button"
          class="link"
          onClick={() => {
            session.signOut();
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      {model ? <ModelPage key={model} model={decodeURIComponent(model)} /> : hash === '#/upload' ? <UploadPage /> : <ModelsList />}
    </>
  );
}

/** The deployment may serve a config.json naming the API's origin (CloudFront in front of a bucket); the embedded platform serves the API itself. */
async function start(): Promise<void> {
  try {
    const res = await fetch('config.json', { cache: 'no-store', credentials: 'omit' });
    if (res.ok) {
      const cfg = (await res.json()) as { apiUrl?: string };
      if (cfg.apiUrl) setApiBase(cfg.apiUrl);
    }
  } catch {
    /* no config: same origin */
  }
  render(<App />, document.getElementById('app')!);
}

void start();
