/**
 * Export: the selected version as one ONNX file (base and heads, runnable anywhere
 * ONNX Runtime runs) and its model card. The files come through the API with the key
 * header, so the page fetches them and hands the browser a local object URL to save.
 */
import { useState } from 'preact/hooks';
import { api, ApiCallError } from './api.js';
import { bytes } from './format.js';

/** Saves a Blob under a file name through a temporary object URL (the only way to name a fetched file). */
function save(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started; the URL is not needed after this turn.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

export function ExportPanel({ model, version }: { model: string; version: string }) {
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<{ text: string; error: boolean } | undefined>();
  const run = async (what: 'onnx' | 'card') => {
    setBusy(true);
    setNote(undefined);
    const filename = `${model}-${version}.${what === 'onnx' ? 'onnx' : 'md'}`;
    try {
      const blob = await (what === 'onnx' ? api.exportOnnx(model, version) : api.card(model, version));
      save(blob, filename);
      setNote({ text: `saved ${filename} (${bytes(blob.size)})`, error: false });
    } catch (e) {
      // A prototype model with nothing to export, say, answers 409 with the reason.
      setNote({ text: e instanceof ApiCallError ? `${e.message} (${e.code})` : String(e), error: true });
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-label="export" data-testid="export">
      <h2>Export</h2>
      <p>
        Version <code>{version}</code> as one ONNX file (input <code>image</code>: RGB 0–255, NHWC; one output per task), and its model card.
      </p>
      <button type="button" data-testid="export-onnx" disabled={busy} onClick={() => void run('onnx')}>
        Download ONNX
      </button>{' '}
      <button type="button" data-testid="export-card" disabled={busy} onClick={() => void run('card')}>
        Download model card
      </button>
      {note ? (
        <p role={note.error ? 'alert' : 'status'} class={note.error ? 'error' : undefined} data-testid="export-note">
          {note.text}
        </p>
      ) : null}
    </section>
  );
}
