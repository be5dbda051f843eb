/**
 * The README's dashboard screenshots, of the demo model `npm start` trains (not of a
 * test fixture): starts the embedded platform in a temporary folder, runs the demo,
 * signs in with headless Chromium (Debian's `chromium`, or TL_CHROMIUM) and saves the
 * models list and the demo's model page under bench/results/.
 *
 * `node --import tsx bench/screenshots.ts`
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { runDemo } from '../shared/local/demo.js';
import { startPlatform } from '../shared/local/platform.js';

const here = path.dirname(fileURLToPath(import.meta.url));

async function main(): Promise<void> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tl-shots-'));
  const platform = await startPlatform({ dataDir, port: 0, log: () => {} });
  try {
    await runDemo(platform, { out: (line) => process.stderr.write(`${line}\n`) });
    const browser = await chromium.launch({
      executablePath: process.env.TL_CHROMIUM ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(platform.url);
      await page.getByTestId('api-key').fill(platform.defaultTenant.tenant.apiKey);
      await page.getByTestId('sign-in').click();
      await page.locator('[data-testid="model-row"][data-model="demo"]').waitFor({ timeout: 30_000 });
      await page.screenshot({ path: path.join(here, 'results/dashboard-models.png') });
      await page.getByRole('link', { name: 'demo' }).click();
      await page.getByTestId('confusion-matrix').first().waitFor();
      // A held-out image in try-it, as a person would try the model.
      const heldOut = path.join(dataDir, 'demo', 'held-out');
      const first = (await readdir(heldOut)).sort()[0];
      await page
        .getByTestId('try-it')
        .locator('input[type="file"]')
        .setInputFiles({ name: first, mimeType: 'image/png', buffer: await readFile(path.join(heldOut, first)) });
      await page.getByTestId('prediction').waitFor({ timeout: 20_000 });
      await page.waitForTimeout(500);
      await page.screenshot({ path: path.join(here, 'results/dashboard-model.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  } finally {
    await platform.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
