/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by
 * playwright-core through the data-testids of the design. Without a Chromium the
 * suite says it skipped and how to enable it; in CI (CI=true) a missing browser fails.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { generateShapesImages } from '../../shared/local/demo-data.js';
import { jobStatusKey, modelJobPointerKey } from '../../shared/jobs/status.js';
import { putJson } from '../../shared/ports/object-store.js';
import type { JobStatus } from '../../shared/schemas/job.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

const CHROMIUM = process.env.TL_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
/** A label a careless page would turn into markup that runs script. */
const XSS_LABEL = '<img src=x onerror=alert(1)>';
const CLASSES = ['circle', 'square', XSS_LABEL] as const;

if (!HAVE_CHROMIUM) {
  process.stderr.write(
    `\nSKIPPED the dashboard browser tests: no Chromium at ${CHROMIUM}. Enable them with \`apt-get install -y chromium\` (as root) or TL_CHROMIUM=<path>.\n\n`,
  );
}

describe('a missing Chromium in CI', () => {
  it('fails instead of skipping silently', () => {
    if (process.env.CI === 'true' || process.env.CI === '1') expect(HAVE_CHROMIUM, `CI must run the browser tests: install chromium (${CHROMIUM})`).toBe(true);
  });
});

describe.skipIf(!HAVE_CHROMIUM)('dashboard in headless Chromium', () => {
  let t: TestPlatform;
  let browser: Browser;
  let page: Page;
  const dialogs: string[] = [];
  const requests: string[] = [];
  const consoleLines: string[] = [];
  let heldOut: Awaited<ReturnType<typeof generateShapesImages>>;

  beforeAll(async () => {
    t = await startTestPlatform();
    // A small, fast model: dense heads straight on the pixels (base "none") on the wasm backend.
    const images = await generateShapesImages({ perClass: 10, seed: 31, classes: ['circle', 'square', 'triangle'], minSize: 48, maxSize: 64 });
    const labelOf = (l: string) => (l === 'triangle' ? XSS_LABEL : l);
    await t.upload('dash', [
      ...images.map((img, i) => ({ path: `${labelOf(img.label)}/${i}.${img.format === 'jpeg' ? 'jpg' : img.format}`, data: img.buffer })),
      { path: 'circle/broken.png', data: Buffer.from('not a png at all') },
      { path: 'train.json', data: JSON.stringify({ model: 'dash', base: 'none', training: { epochs: 6, patience: 6 } }) },
    ]);
    heldOut = await generateShapesImages({ perClass: 1, seed: 4242, classes: ['circle'], minSize: 48, maxSize: 64 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => consoleLines.push(m.text()));
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  async function signIn(): Promise<void> {
    await page.goto(t.platform.url);
    await page.getByTestId('api-key').fill(t.apiKey);
    await page.getByTestId('sign-in').click();
  }

  it('refuses a wrong key, then signs in keeping the key out of URLs, cookies and logs', async () => {
    await page.goto(t.platform.url);
    await page.getByTestId('api-key').fill('tl_not_the_key');
    await page.getByTestId('sign-in').click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('INVALID_API_KEY');

    await signIn();
    await page.getByRole('heading', { name: 'Models' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('tl.apiKey'))).toBe(t.apiKey);
    expect(await page.evaluate(() => JSON.stringify(localStorage) + document.cookie)).not.toContain(t.apiKey);
    expect(await page.context().cookies()).toEqual([]);
    expect(requests.filter((u) => u.includes(t.apiKey))).toEqual([]);
    expect(consoleLines.filter((l) => l.includes(t.apiKey))).toEqual([]);
  });

  it('shows the trained model: row, curves with ≥2 points per series, a labels² confusion matrix, and the XSS label as text', async () => {
    const job = await t.waitForJob('dash');
    expect(job.state, `${job.error?.message}\n${t.jobOutput.slice(-20).join('\n')}`).toBe('succeeded');
    expect(job.history?.length ?? 0).toBeGreaterThanOrEqual(2);

    await page.goto(`${t.platform.url}/#/`);
    const row = page.locator('[data-testid="model-row"][data-model="dash"]');
    await row.waitFor({ timeout: 15_000 });
    await row.getByRole('link', { name: 'dash' }).click();

    const curve = page.getByTestId('learning-curve').first();
    await curve.waitFor();
    expect(await curve.locator('canvas').count()).toBeGreaterThan(0);
    const points = await curve.getByTestId('curve-point').all();
    expect(points.length).toBeGreaterThanOrEqual(2);
    // Every series has a number at every epoch ("–" marks a missing one).
    for (const p of points) expect(await p.locator('td').allTextContents()).not.toContain('–');
    const headers = await curve.locator('thead th').allTextContents();
    expect(headers).toEqual(expect.arrayContaining(['training loss', 'validation loss', 'training accuracy', 'validation accuracy']));

    const matrix = page.getByTestId('confusion-matrix');
    await matrix.waitFor();
    expect(await matrix.getByTestId('matrix-cell').count()).toBe(CLASSES.length ** 2);
    const columnLabels = await matrix.locator('thead th').allTextContents();
    expect(columnLabels.slice(1).sort()).toEqual([...CLASSES].sort());

    // The hostile label is text: no <img src=x> was made from it, and nothing ran.
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(await page.getByText(XSS_LABEL, { exact: true }).count()).toBeGreaterThan(0);
    expect(dialogs).toEqual([]);

    // The dataset panel names the skipped file and why.
    expect(await page.getByTestId('skipped').textContent()).toContain('circle/broken.png');
  });

  it('try-it predicts a held-out image with top-k bars, as the API does', async () => {
    const tryIt = page.getByTestId('try-it');
    await tryIt.locator('input[type="file"]').setInputFiles({ name: 'held-out.png', mimeType: 'image/png', buffer: heldOut[0].buffer });
    const prediction = page.getByTestId('prediction');
    await prediction.waitFor({ timeout: 20_000 });
    const bars = await prediction.getByRole('meter').count();
    expect(bars).toBe(CLASSES.length);
    const api = await t.call('POST', '/models/dash/predict', { instances: [{ image: heldOut[0].buffer.toString('base64') }], topK: 5 });
    const top = (api.body.predictions[0].class as { label: string }).label;
    expect((await prediction.locator('.bar-label').first().textContent()) ?? '').toBe(top);
    expect(dialogs).toEqual([]);
    if (process.env.TL_SCREENSHOTS) {
      await mkdir(path.resolve('bench/results'), { recursive: true });
      await page.screenshot({ path: path.resolve('bench/results/dashboard-model.png'), fullPage: true });
      await page.goto(`${t.platform.url}/#/`);
      await page.getByTestId('model-row').first().waitFor();
      await page.screenshot({ path: path.resolve('bench/results/dashboard-models.png') });
    }
  });

  it('exports the serving version as an ONNX file that ONNX Runtime loads, and its model card', async () => {
    const serving = (await t.call('GET', '/models/dash')).body as { version: string };
    await page.goto(`${t.platform.url}/#/models/dash`);
    const panel = page.getByTestId('export');
    await panel.waitFor();

    const [onnx] = await Promise.all([page.waitForEvent('download'), panel.getByTestId('export-onnx').click()]);
    expect(onnx.suggestedFilename()).toBe(`dash-${serving.version}.onnx`);
    const onnxBytes = await readFile(await onnx.path());
    const fromApi = Buffer.from(
      await (await fetch(`${t.platform.url}/models/dash/export?format=onnx&version=${serving.version}`, { headers: { 'x-api-key': t.apiKey } })).arrayBuffer(),
    );
    expect(onnxBytes.equals(fromApi)).toBe(true);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(onnxBytes);
    expect(session.inputNames).toEqual(['image']);
    expect(session.outputNames).toEqual(['class']);
    await session.release();
    await expect.poll(() => panel.getByTestId('export-note').textContent()).toMatch(new RegExp(`saved dash-${serving.version}\\.onnx \\(.+B\\)`));

    const [card] = await Promise.all([page.waitForEvent('download'), panel.getByTestId('export-card').click()]);
    expect(card.suggestedFilename()).toBe(`dash-${serving.version}.md`);
    const text = await readFile(await card.path(), 'utf8');
    expect(text).toContain(serving.version);
    expect(text).toContain(XSS_LABEL); // the card is markdown text, saved as it is
    expect(dialogs).toEqual([]);
    expect(requests.filter((u) => u.includes(t.apiKey))).toEqual([]);
  });

  it('works from the keyboard alone, and every control has a name', async () => {
    // A fresh tab: signed out.
    const tab = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await tab.goto(t.platform.url);
      // A tab opened after others is not the focused one: keys would go nowhere until it is.
      await tab.bringToFront();
      await tab.getByTestId('api-key').waitFor();
      const focusedTestId = () => tab.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.textContent ?? '');
      await tab.keyboard.press('Tab');
      expect(await focusedTestId()).toBe('api-key');
      await tab.keyboard.type(t.apiKey);
      await tab.keyboard.press('Enter');
      await tab.getByRole('heading', { name: 'Models' }).waitFor();
      await tab.locator('[data-testid="model-row"][data-model="dash"]').waitFor({ timeout: 15_000 });
      // Tab along the page to the model's link, then open it with Enter.
      let found = false;
      for (let i = 0; i < 30 && !found; i++) {
        await tab.keyboard.press('Tab');
        found = await tab.evaluate(() => document.activeElement?.tagName === 'A' && document.activeElement.textContent === 'dash');
      }
      expect(found, 'the model link is reachable with Tab').toBe(true);
      await tab.keyboard.press('Enter');
      await tab.waitForURL(/#\/models\/dash$/);
      await tab.getByTestId('try-it').waitFor();
      await tab.getByTestId('export').waitFor();
      // Every control on the model and upload pages says what it is to a screen reader.
      for (const route of ['#/models/dash', '#/upload']) {
        await tab.goto(`${t.platform.url}/${route}`);
        await tab.locator('main h1').first().waitFor();
        await tab.waitForTimeout(300);
        const unnamed = await tab.evaluate(() =>
          Array.from(document.querySelectorAll('input, select, textarea, button, a[href]'))
            .filter((el) => {
              const labels = (el as HTMLInputElement).labels;
              const name = el.getAttribute('aria-label') ?? (labels && labels.length ? labels[0].textContent : el.textContent);
              return !name || !name.trim();
            })
            .map((el) => el.outerHTML.slice(0, 120)),
        );
        expect(unnamed, route).toEqual([]);
      }
    } finally {
      await tab.close();
    }
  });

  it('takes a folder dropped on the upload page, with the paths under it', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'tl-browser-drop-'));
    try {
      const images = await generateShapesImages({ perClass: 3, seed: 78, classes: ['circle', 'square'], minSize: 48, maxSize: 64 });
      const ext = (img: (typeof images)[number]) => (img.format === 'jpeg' ? 'jpg' : img.format);
      for (const [i, img] of images.entries()) {
        await mkdir(path.join(root, 'dropped', img.label), { recursive: true });
        await writeFile(path.join(root, 'dropped', img.label, `${i}.${ext(img)}`), img.buffer);
      }
      await writeFile(path.join(root, 'dropped', '.DS_Store'), 'hidden');
      await page.goto(`${t.platform.url}/#/upload`);
      await page.getByTestId('upload-model').fill('dropped');
      await page.getByLabel('Base model').selectOption('none');
      await page.getByLabel('Epochs (optional)').fill('2');
      const zone = page.getByTestId('upload-drop');
      const box = (await zone.boundingBox())!;
      // A real drag of a folder from the desktop, as Chromium receives one (DevTools protocol: Input.dispatchDragEvent).
      const cdp = await page.context().newCDPSession(page);
      const data = { items: [], files: [path.join(root, 'dropped')], dragOperationsMask: 1 };
      const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
      for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
      await page.getByText(`${images.length} files chosen`).waitFor({ timeout: 10_000 });
      await page.getByTestId('upload-start').click();
      await page.waitForURL(/#\/models\/dropped$/, { timeout: 20_000 });
      const stored = await t.platform.defaultTenant.store.list('datasets/dropped/');
      expect(stored.map((o) => o.key).sort()).toEqual(
        [...images.map((img, i) => `datasets/dropped/${img.label}/${i}.${ext(img)}`), 'datasets/dropped/train.json'].sort(),
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('promotes another version and rolls back from the versions table', async () => {
    // Prepare: a second version of "dash" (its metadata under a newer id), kept out of latest.
    const store = t.platform.defaultTenant.store;
    const serving = (await t.call('GET', '/models/dash')).body as { version: string };
    const other = 'v20990101000000-abcdef';
    const meta = JSON.parse((await store.get(`models/dash/${serving.version}/metadata.json`)).toString()) as Record<string, unknown>;
    await putJson(store, `models/dash/${other}/metadata.json`, { ...meta, version: other });
    await page.goto(`${t.platform.url}/#/models/dash`);
    await page.reload();
    const rows = page.getByTestId('version-row');
    await expect.poll(() => rows.count()).toBe(2);

    // Act: promote the other version, then roll back.
    await rows.filter({ hasText: other }).getByTestId('promote').click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain(`latest now serves ${other}`);
    expect((await t.call('GET', '/models/dash')).body.version).toBe(other);
    await page.getByTestId('rollback').click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain(`latest now serves ${serving.version}`);

    // Assess
    expect((await t.call('GET', '/models/dash')).body.version).toBe(serving.version);
    await expect.poll(() => rows.filter({ hasText: serving.version }).locator('.alias-latest').count()).toBe(1);
  });

  it('draws a running job live, at most 2 s behind its status', async () => {
    // Prepare: a job recorded as running with three epochs (its status is what a training job writes).
    const store = t.platform.defaultTenant.store;
    const now = new Date().toISOString();
    const history = [1, 2, 3].map((epoch) => ({ epoch, loss: 1 / epoch, val_loss: 1.2 / epoch, val_acc: 0.3 * epoch }));
    const status: JobStatus = {
      jobId: 'train-live-0',
      model: 'live',
      dataset: 'live',
      datasetHash: 'h',
      state: 'running',
      phase: 'training',
      progress: 0.5,
      epoch: 3,
      epochs: 10,
      metrics: {},
      history,
      createdAt: now,
      updatedAt: now,
    };
    await putJson(store, jobStatusKey(status.jobId), status);
    await putJson(store, modelJobPointerKey('live'), { jobId: status.jobId });

    // Act
    await page.goto(`${t.platform.url}/#/models/live`);
    const curve = page.getByTestId('learning-curve');
    await curve.waitFor();
    expect(await curve.locator('.live').count()).toBe(1);
    expect(await curve.getByTestId('curve-point').count()).toBe(3);
    await putJson(store, jobStatusKey(status.jobId), { ...status, epoch: 4, history: [...history, { epoch: 4, loss: 0.2, val_loss: 0.3, val_acc: 0.95 }] });
    const written = Date.now();

    // Assess
    await expect.poll(() => curve.getByTestId('curve-point').count(), { timeout: 2_500, interval: 100 }).toBe(4);
    expect(Date.now() - written).toBeLessThanOrEqual(2_500);
    expect(await page.getByTestId('job-state').textContent()).toBe('running');
  });

  it('uploads a folder from the page through presigned PUTs, train.json last, and ends in a served model', async () => {
    // Prepare: a folder of <label>/<image> files on disk, as a person would pick it.
    const root = await mkdtemp(path.join(tmpdir(), 'tl-browser-upload-'));
    try {
      const images = await generateShapesImages({ perClass: 8, seed: 77, classes: ['circle', 'square'], minSize: 48, maxSize: 64 });
      for (const [i, img] of images.entries()) {
        await mkdir(path.join(root, 'mine', img.label), { recursive: true });
        await writeFile(path.join(root, 'mine', img.label, `${i}.${img.format === 'jpeg' ? 'jpg' : img.format}`), img.buffer);
      }

      // Act
      await page.goto(`${t.platform.url}/#/upload`);
      await page.getByTestId('upload-model').fill('mine');
      await page.getByLabel('Base model').selectOption('none');
      await page.getByLabel('Epochs (optional)').fill('4');
      await page.getByTestId('upload-folder').setInputFiles(path.join(root, 'mine'));
      await page.getByText(`${images.length} files chosen`).waitFor();
      await page.getByTestId('upload-start').click();

      // Assess: every file (and train.json last) went up, then the model page follows the job to a served version.
      await page.waitForURL(/#\/models\/mine$/, { timeout: 20_000 });
      await expect.poll(() => page.getByTestId('job-state').textContent(), { timeout: 60_000, interval: 500 }).toBe('succeeded');
      await page.getByTestId('try-it').waitFor({ timeout: 10_000 });
      const listed = await t.call('GET', '/models/mine/versions');
      expect(listed.body.versions).toHaveLength(1);
      const stored = await t.platform.defaultTenant.store.list('datasets/mine/');
      expect(stored.map((o) => o.key).sort()).toEqual(
        [...images.map((img, i) => `datasets/mine/${img.label}/${i}.${img.format === 'jpeg' ? 'jpg' : img.format}`), 'datasets/mine/train.json'].sort(),
      );
      expect(requests.filter((u) => u.includes(t.apiKey))).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('shows the representation search: every candidate with its score, the chosen one marked, the verdict', async () => {
    // A model on mobilenet_v2, where the job searches its representation.
    const images = await generateShapesImages({ perClass: 8, seed: 77, classes: ['circle', 'square'], minSize: 48, maxSize: 64 });
    await t.upload('searched', [
      ...images.map((img, i) => ({ path: `${img.label}/${i}.${img.format === 'jpeg' ? 'jpg' : img.format}`, data: img.buffer })),
      { path: 'train.json', data: JSON.stringify({ model: 'searched' }) },
    ]);
    const job = await t.waitForJob('searched');
    expect(job.state, job.error?.message).toBe('succeeded');
    const board = job.search!;

    await page.goto(`${t.platform.url}/#/models/searched`);
    const table = page.getByTestId('leaderboard');
    await table.waitFor();
    const rows = table.locator('tbody tr');
    expect(await rows.count()).toBe(board.leaderboard.length);
    const names = await rows.locator('th').allTextContents();
    expect(names.filter((n) => n.endsWith(' (chosen)'))).toEqual([`${board.chosen} (chosen)`]);
    expect(names.map((n) => n.replace(' (chosen)', ''))).toEqual(board.leaderboard.map((e) => e.candidate));
    const first = board.leaderboard[0];
    // "93.8% ± 4.2%": the first candidate's CV mean as a percentage, to its 0.1.
    const cell = (await rows.first().locator('td').nth(2).textContent()) ?? '';
    expect(cell).toContain('±');
    expect(Number.parseFloat(cell)).toBeCloseTo(100 * first.cvMean!, 1);
    // A candidate stopped once it could not reach the leader (here the pixels) shows its partial score and why.
    const stopped = board.leaderboard.flatMap((e, i) => (e.cvMean !== undefined && e.note ? [{ e, i }] : []));
    expect(stopped.map(({ e }) => e.candidate)).toContain('pixels 32×32×3');
    for (const { e, i } of stopped) expect(await rows.nth(i).getByTestId('search-note').textContent()).toContain(e.note);
    await page.getByText(board.verdict).waitFor();
  });

  it('stays readable at phone width: no page-wide horizontal scrolling', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    try {
      for (const route of ['#/', '#/models/dash', '#/upload']) {
        await page.goto(`${t.platform.url}/${route}`);
        await page.locator('main h1').first().waitFor();
        await page.waitForTimeout(300);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, route).toBeLessThanOrEqual(390);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });
});
