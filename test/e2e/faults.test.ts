import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../shared/local/cli.js';
import { generateShapesImages } from '../../shared/local/demo-data.js';
import { readLatestJobOfModel } from '../../shared/jobs/status.js';
import type { JobStatus } from '../../shared/schemas/job.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

/** Every file under a folder, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

async function until<T>(what: () => Promise<T | undefined>, ms: number, why: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${why}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a disk that fills during a job, then frees', () => {
  let t: TestPlatform;
  let faultFile: string;
  let bucket: string;
  beforeAll(async () => {
    faultFile = path.join(await import('node:os').then((os) => os.tmpdir()), `tl-fault-${process.pid}-${Date.now()}`);
    t = await startTestPlatform({ faultFile, recordRetryMs: 200 });
    bucket = t.platform.defaultTenant.bucketDir;
  });
  afterAll(async () => {
    await rm(faultFile, { force: true });
    await t?.close();
  });

  const files = async (model: string, seed: number) => {
    const images = await generateShapesImages({ perClass: 6, seed });
    return [
      ...images.map((img, i) => ({ path: `${img.label}/${i}.png`, data: img.buffer })),
      // One file no decoder reads: it must be reported as skipped, with its reason.
      { path: 'circle/broken.png', data: Buffer.from('not a png at all') },
      { path: 'train.json', data: JSON.stringify({ model, base: 'none', training: { epochs: 60, patience: 60 } }) },
    ];
  };

  const store = () => t.platform.defaultTenant.store;

  /**
   * Runs a job and breaks the disk at `when`: once it reaches that phase, or at the
   * first write of a key matching a regex (armed before the upload, so no race with
   * a fast stage); frees the disk once the process is gone; returns the recorded end.
   */
  async function failAt(
    model: string,
    when: { phase: string } | { key: RegExp },
    code: 'ENOSPC' | 'EROFS',
  ): Promise<{ stuck: JobStatus; ended: JobStatus; left: string[] }> {
    if ('key' in when) await writeFile(faultFile, `${code}@${when.key.source}`);
    await t.upload(model, await files(model, 3));
    if ('phase' in when) {
      const { phase } = when;
      await until(async () => ((await readLatestJobOfModel(store(), model))?.phase === phase ? true : undefined), 180_000, `phase ${phase}`);
      await writeFile(faultFile, code);
    } else {
      await until(async () => ((await readFile(faultFile, 'utf8')) === code ? true : undefined), 180_000, `a write of ${when.key.source}`);
    }
    // The process dies unable to write anything, its end included.
    await until(async () => (t.platform.runner.idle ? true : undefined), 120_000, 'the job process to end');
    await new Promise((r) => setTimeout(r, 600));
    const stuck = (await readLatestJobOfModel(store(), model))!;
    // What the job left, before the disk frees and the platform sweeps it.
    const left = (await filesUnder(path.join(bucket, 'models', model))).map((f) => path.basename(f));
    await rm(faultFile, { force: true });
    const ended = await until(
      async () => {
        const s = await readLatestJobOfModel(store(), model);
        return s && s.state !== 'running' && s.state !== 'submitted' ? s : undefined;
      },
      30_000,
      'the end of the job to be recorded',
    );
    return { stuck, ended, left };
  }

  /** Sweeps leftovers, then checks that no temporary file or incomplete version remains and the model is unknown. */
  const expectNothingHalfWritten = async (model: string) => {
    await t.platform.collectGarbage();
    const all = await filesUnder(bucket);
    expect(
      all.filter((f) => path.basename(f).startsWith('.tmp-')),
      'temporary files',
    ).toEqual([]);
    const versionDirs = new Set(all.filter((f) => f.startsWith(`models${path.sep}${model}${path.sep}v`)).map((f) => f.split(path.sep)[2]));
    for (const v of versionDirs) expect(all, `version ${v} is complete`).toContain(path.join('models', model, v, 'metadata.json'));
    const listed = (await t.call('GET', '/models')).body.models.map((m: { model: string }) => m.model);
    expect(listed).not.toContain(model);
    expect((await t.call('GET', `/models/${model}`)).status).toBe(404);
  };

  const retrainSucceeds = async (model: string) => {
    const since = Date.now();
    await t.upload(model, await files(model, 3));
    // The same content again: the failed job is rerun (its status written anew after `since`).
    const job = await until(
      async () => {
        const s = await readLatestJobOfModel(store(), model);
        return s && Date.parse(s.updatedAt) >= since && (s.state === 'succeeded' || s.state === 'failed') ? s : undefined;
      },
      240_000,
      `the rerun of ${model}`,
    );
    await t.platform.whenIdle();
    expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
    const res = await t.call('GET', `/models/${model}`);
    expect(res.status).toBe(200);
    return res.body;
  };

  it('fails a job whose disk filled during training with a code once space returns, and a new upload trains it', async () => {
    const { stuck, ended } = await failAt('fill-train', { phase: 'training' }, 'ENOSPC');

    // While the disk was full nothing could be written: the status still said "running".
    expect(stuck.state).toBe('running');
    expect(ended.state).toBe('failed');
    expect(ended.error?.code).toBe('INSUFFICIENT_STORAGE');
    await expectNothingHalfWritten('fill-train');

    const described = await retrainSucceeds('fill-train');
    // The corrupt file is reported, in the model description, the job status and `tl status`.
    expect(described.records).toMatchObject({ skipped: 1, firstSkipped: [{ key: expect.stringMatching(/circle\/broken\.png$/) }] });
    const job = (await t.call('GET', '/models/fill-train/job')).body as JobStatus;
    expect(job.records?.skipped).toBe(1);
    let out = '';
    const io = { stdout: { write: (s: string) => void (out += s) }, stderr: { write: () => {} }, env: {}, cwd: process.cwd() };
    expect(await runCli(['status', 'fill-train', '--endpoint', t.platform.url, '--api-key', t.apiKey], io as never)).toBe(0);
    expect(out).toMatch(/skipped 1 of \d+ files: (datasets\/fill-train\/)?circle\/broken\.png \(/);
    // Deleted checkpoints leave no empty folders behind.
    expect(await readdir(path.join(bucket, 'jobs', job.jobId)).catch(() => [])).not.toContain('checkpoint');
  });

  it('fails a job whose disk turned read-only while publishing, never lists the half-written version, and trains on the next upload', async () => {
    // The model files of the version are written; its report.json is the write that fails.
    const { stuck, ended, left } = await failAt('ro-publish', { key: /^models\/ro-publish\/[^/]+\/report\.json$/ }, 'EROFS');

    // From that write on the whole disk is read-only: the job could not record its own end.
    expect(stuck.state).toBe('running');
    expect(ended.state).toBe('failed');
    expect(ended.error?.code).toBe('STORAGE_UNAVAILABLE');
    // Half a version was on disk: its model files without report.json or metadata.json.
    expect(left).toContain('model.json');
    expect(left).not.toContain('metadata.json');
    await expectNothingHalfWritten('ro-publish');

    const described = await retrainSucceeds('ro-publish');
    expect(described.model).toBe('ro-publish');
  });
});
