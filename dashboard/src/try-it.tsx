import { useState } from 'preact/hooks';
import type { PredictResponse } from '../../shared/schemas/predict.js';
import { api, ApiCallError } from './api.js';
import { number, percent } from './format.js';

/** Reads a file as base64 without its data-URL prefix. */
function readBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve((typeof reader.result === 'string' ? reader.result : '').replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error ?? new Error('could not read the file'));
    reader.readAsDataURL(file);
  });
}

function Prediction({ result }: { result: PredictResponse }) {
  const first = result.predictions[0] ?? {};
  return (
    <div data-testid="prediction" class="prediction" aria-live="polite">
      <p>
        version <code>{result.version}</code>
      </p>
      {Object.entries(first).map(([task, p]) => (
        <div key={task} class="task-prediction">
          <h4>{task}</h4>
          {'value' in p ? (
            <p>{p.value.map(number).join(', ')}</p>
          ) : (
            <ul class="bars">
              {p.scores.map((s) => (
                <li key={s.label}>
                  <span class="bar-label">{s.label}</span>
                  <span class="bar" role="meter" aria-valuemin={0} aria-valuemax={1} aria-valuenow={s.score} aria-label={`${s.label} score`}>
                    <span class="bar-fill" style={{ width: `${Math.max(0, Math.min(1, s.score)) * 100}%` }} />
                  </span>
                  <span class="bar-value">{percent(s.score)}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
      ))}
    </div>
  );
}

/** Try the serving version: an image (file picker or drop) or, for a vector model, pasted features. */
export function TryIt({ model, input }: { model: string; input: { type: 'image' } | { type: 'vector'; size: number } }) {
  const [result, setResult] = useState<PredictResponse | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<string | undefined>();
  const [features, setFeatures] = useState('');

  const run = async (instance: () => Promise<{ image: string } | { features: number[] }>) => {
    setBusy(true);
    setError(undefined);
    try {
      setResult(await api.predict(model, await instance()));
    } catch (err) {
      setResult(undefined);
      setError(err instanceof ApiCallError ? `${err.message} (${err.code})` : String(err));
    } finally {
      setBusy(false);
    }
  };
  const onFile = (file: File | undefined) => {
    if (!file) return;
    if (preview) URL.revokeObjectURL(preview);
    setPreview(URL.createObjectURL(file));
    void run(async () => ({ image: await readBase64(file) }));
  };
  const onFeatures = () =>
    run(async () => {
      const values = features
        .split(/[\s,;]+/)
        .filter(Boolean)
        .map(Number);
      if (values.some((v) => !Number.isFinite(v))) throw new Error('features must be numbers separated by commas or spaces');
      return { features: values };
    });

  return (
    <section class="card" data-testid="try-it" aria-label="try the model">
      <h2>Try it</h2>
      {input.type === 'image' ? (
        <label
          class="dropzone"
          onDragOver={(e) => e.preventDefault()}
          onDrop={(e) => {
            e.preventDefault();
            onFile(e.dataTransfer?.files[0]);
          }}
        >
          Choose or drop an image
          <input type="file" accept="image/*" onChange={(e) => onFile(e.currentTarget.files?.[0])} />
        </label>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void onFeatures();
          }}
        >
          <label>
            {input.size} features, separated by commas or spaces
            <textarea rows={3} value={features} onInput={(e) => setFeatures(e.currentTarget.value)} />
          </label>
          <button type="submit">Predict</button>
        </form>
      )}
      {preview ? <img class="preview" src={preview} alt="the image sent" /> : null}
      {busy ? <p role="status">Predicting…</p> : null}
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {result ? <Prediction result={result} /> : null}
    </section>
  );
}
