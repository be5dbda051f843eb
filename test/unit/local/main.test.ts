import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('npm start (shared/local/main.ts)', () => {
  it('refuses settings that do not validate with their names and no stack trace, exit 1', async () => {
    // Prepare: one of main's own settings, and two read later that the start checks.
    const dataDir = await mkdtemp(path.join(tmpdir(), 'tl-main-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const start = (env: Record<string, string>) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(root, 'shared/local/main.ts')], {
        cwd: root,
        timeout: 30_000, // were the check gone, the server would start and serve until stopped
        env: { PATH: process.env.PATH ?? '', TL_DATA_DIR: dataDir, TL_DEMO: '0', PORT: '0', ...env },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
      );

    // Act
    const [port, heap, engine] = await Promise.all([start({ PORT: 'eighty' }), start({ TL_HEAP_GROWING_PERCENT: 'lots' }), start({ TL_ENGINE: 'gpu' })]);

    // Assess
    for (const [run, name] of [
      [port, 'PORT'],
      [heap, 'TL_HEAP_GROWING_PERCENT'],
      [engine, 'TL_ENGINE'],
    ] as const) {
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('invalid environment');
      expect(run.stderr).toContain(`${name}:`);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
  }, 60_000);
});
