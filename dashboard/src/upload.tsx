/**
 * Upload from the browser: a folder of `<label>/<image>` files (or with a
 * manifest.jsonl), straight to the bucket through the presigned PUT URLs the API
 * hands out (the key never goes there), then train.json last, which starts training.
 */
import { useState } from 'preact/hooks';
import { api, ApiCallError } from './api.js';

/** Files per request for upload URLs (the API's limit). */
const URLS_PER_CALL = 1000;
const PARALLEL_PUTS = 4;

interface Picked {
  path: string;
  file: File;
}

interface FileState {
  path: string;
  loaded: number;
  total: number;
  state: 'waiting' | 'uploading' | 'done' | 'failed';
  error?: string;
}

/** Paths relative to the folder chosen: `<folder>/<label>/<file>` loses `<folder>/`; hidden files are left out, as `tl upload` does. */
export function relativePaths(files: Array<{ name: string; webkitRelativePath: string }>): Array<{ path: string; index: number }> {
  return files
    .map((f, index) => ({
      path: (f.webkitRelativePath || f.name)
        .split('/')
        .slice(f.webkitRelativePath ? 1 : 0)
        .join('/'),
      index,
    }))
    .filter((p) => p.path && !p.path.split('/').some((seg) => seg.startsWith('.')));
}

/** Reads every file under a dropped folder entry, with its path inside the drop. */
async function walk(entry: FileSystemEntry, out: Array<{ path: string; file: File }>): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ path: entry.fullPath.replace(/^\/+/, ''), file });
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries answers in batches (100 at a time in Chromium) until it answers none.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const child of batch) await walk(child, out);
  }
}

/**
 * The files of a drop with their paths, through the File and Directory Entries API:
 * the only way a page can read a dropped folder (a file input needs `webkitdirectory`,
 * a drop has no such switch). One dropped folder counts as the dataset's folder, as when
 * it is picked (its own name is left out); dropped label folders or files keep their paths.
 */
export async function droppedFiles(items: DataTransferItemList): Promise<Array<{ path: string; file: File }>> {
  // Entries must be taken while the drop event runs; the list is emptied after it.
  const taken = Array.from(items)
    .filter((i) => i.kind === 'file')
    .map((i) => ({ entry: i.webkitGetAsEntry(), file: i.getAsFile() }));
  const out: Array<{ path: string; file: File }> = [];
  for (const { entry, file } of taken) {
    if (entry) await walk(entry, out);
    else if (file) out.push({ path: file.name, file });
  }
  const oneFolder = taken.length === 1 && taken[0].entry?.isDirectory;
  return out
    .map((f) => ({ ...f, path: oneFolder ? f.path.split('/').slice(1).join('/') : f.path }))
    .filter((f) => f.path && !f.path.split('/').some((seg) => seg.startsWith('.')));
}

/** PUT with upload progress (fetch reports none). */
function put(url: string, headers: Record<string, string>, body: Blob, onProgress: (loaded: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`HTTP ${xhr.status}: ${xhr.responseText.slice(0, 200)}`)));
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(body);
  });
}

async function uploadAll(dataset: string, picked: Picked[], spec: unknown, update: (i: number, patch: Partial<FileState>) => void): Promise<void> {
  const files = [...picked, { path: 'train.json', file: new File([JSON.stringify(spec)], 'train.json', { type: 'application/json' }) }];
  const urls: Array<{ url: string; headers: Record<string, string> }> = [];
  for (let i = 0; i < files.length; i += URLS_PER_CALL) {
    const batch = files.slice(i, i + URLS_PER_CALL).map((f) => ({ path: f.path }));
    urls.push(...(await api.uploadUrls(dataset, batch)).uploads);
  }
  const send = async (i: number) => {
    update(i, { state: 'uploading' });
    try {
      await put(urls[i].url, urls[i].headers, files[i].file, (loaded) => update(i, { loaded }));
      update(i, { state: 'done', loaded: files[i].file.size });
    } catch (err) {
      update(i, { state: 'failed', error: (err as Error).message });
      throw err;
    }
  };
  let next = 0;
  const dataCount = files.length - 1;
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL_PUTS, dataCount) }, async () => {
      while (next < dataCount) await send(next++);
    }),
  );
  // train.json last: its arrival starts preprocessing and training.
  await send(dataCount);
}

export function UploadPage() {
  const [model, setModel] = useState('');
  const [base, setBase] = useState('mobilenet_v2');
  const [epochs, setEpochs] = useState('');
  const [picked, setPicked] = useState<Picked[]>([]);
  const [progress, setProgress] = useState<FileState[]>([]);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const choose = (list: FileList | null) => {
    const files = list ? Array.from(list) : [];
    setPicked(relativePaths(files).map((p) => ({ path: p.path, file: files[p.index] })));
  };
  const [dragging, setDragging] = useState(false);
  const drop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (!e.dataTransfer) return;
    droppedFiles(e.dataTransfer.items).then(setPicked, (err: unknown) =>
      setError(`could not read the dropped files: ${String((err as Error).message ?? err)}`),
    );
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    if (!picked.length) return setError('choose a folder of <label>/<image> files first');
    const spec = { model, base, ...(epochs ? { training: { epochs: Number(epochs) } } : {}) };
    const state: FileState[] = [...picked.map((p) => ({ path: p.path, total: p.file.size })), { path: 'train.json', total: 0 }].map((f) => ({
      ...f,
      loaded: 0,
      state: 'waiting' as const,
    }));
    setProgress(state);
    setBusy(true);
    try {
      await uploadAll(model, picked, spec, (i, patch) => {
        state[i] = { ...state[i], ...patch };
        setProgress([...state]);
      });
      location.hash = `#/models/${encodeURIComponent(model)}`;
    } catch (err) {
      setError(err instanceof ApiCallError ? `${err.message} (${err.code})` : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  };
  const done = progress.filter((p) => p.state === 'done').length;
  return (
    <main aria-label="upload a dataset">
      <h1>Train a model on your images</h1>
      <form class="card upload" onSubmit={(e) => void submit(e)}>
        <label>
          Model name
          <input data-testid="upload-model" required pattern="[A-Za-z0-9][A-Za-z0-9_\-]{0,62}" value={model} onInput={(e) => setModel(e.currentTarget.value)} />
        </label>
        <label>
          Base model
          <select value={base} onChange={(e) => setBase(e.currentTarget.value)}>
            <option value="mobilenet_v2">mobilenet_v2 (transfer learning)</option>
            <option value="none">none (train on the pixels)</option>
          </select>
        </label>
        <label>
          Epochs (optional)
          <input type="number" min={1} max={1000} value={epochs} onInput={(e) => setEpochs(e.currentTarget.value)} />
        </label>
        <label
          class={`dropzone${dragging ? ' dragging' : ''}`}
          data-testid="upload-drop"
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={drop}
        >
          Choose or drop a folder with one sub-folder per label (or a manifest.jsonl beside the files)
          <input data-testid="upload-folder" type="file" multiple {...{ webkitdirectory: true }} onChange={(e) => choose(e.currentTarget.files)} />
        </label>
        <p>{picked.length} files chosen</p>
        <button type="submit" data-testid="upload-start" disabled={busy}>
          Upload and train
        </button>
      </form>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {progress.length ? (
        <section class="card" aria-label="upload progress">
          <p role="status">
            {done} of {progress.length} files uploaded
          </p>
          <ul class="files" data-testid="upload-files">
            {progress.map((p) => (
              <li key={p.path}>
                <progress max={p.total || 1} value={p.state === 'done' ? p.total || 1 : p.loaded} aria-label={p.path} /> <span>{p.path}</span> {p.state}
                {p.error ? <span class="error"> {p.error}</span> : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </main>
  );
}
