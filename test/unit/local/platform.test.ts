import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPlatform } from '../../../shared/local/platform.js';
import { readLatestJobOfModel } from '../../../shared/jobs/status.js';

const png = (colour: string) =>
  sharp({ create: { width: 16, height: 16, channels: 3, background: colour } })
    .png()
    .toBuffer();

async function until<T>(what: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('local platform lifecycle', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'tl-platform-'));
  });
  afterEach(async () => rm(dataDir, { recursive: true, force: true }));

  it('leaves a job that was running at stop unfinished, and starts it again on the next start', async () => {
    // Prepare: a platform whose "training job" just waits, as a long job would.
    const first = await startPlatform({
      dataDir,
      port: 0,
      log: () => {},
      runner: { command: { file: process.execPath, args: ['-e', 'setTimeout(() => {}, 60000)'] } },
    });
    const store = first.defaultTenant.store;
    for (const [label, colour] of [
      ['red', '#f00'],
      ['blue', '#00f'],
    ]) {
      for (let i = 0; i < 3; i++) await store.put(`datasets/colours/${label}/${i}.png`, await png(colour));
    }
    await store.put('datasets/colours/train.json', JSON.stringify({ base: 'none' }));
    const running = await until(async () => {
      const s = await readLatestJobOfModel(store, 'colours');
      return s?.runnerJobId && (await first.runner.describe(s.runnerJobId))?.state === 'running' ? s : undefined;
    });

    // Act: stop, then start again with a job command that reports its job id.
    await first.stop();
    const afterStop = await readLatestJobOfModel(store, 'colours');
    const lines: string[] = [];
    const second = await startPlatform({
      dataDir,
      port: 0,
      log: () => {},
      runner: {
        command: { file: process.execPath, args: ['-e', 'console.log("started " + process.env.TL_JOB_ID)'] },
        onOutput: (_id, line) => lines.push(line),
      },
    });
    try {
      await until(async () => (lines.length ? true : undefined));
      // Assess
      expect(afterStop?.state).not.toMatch(/failed|cancelled/);
      expect(lines).toEqual([`started ${running.jobId}`]);
    } finally {
      await second.stop();
    }
  });
});
