import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../shared/local/cli.js';
import { batchInstances, predictImages } from '../../../shared/local/cli-predict.js';
import { FakePlatform, captureOutput } from './fake-platform.js';

describe('tl predict', () => {
  let dir: string;
  let platform: FakePlatform | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tl-predict-'));
  });
  afterEach(async () => {
    await platform?.stop();
    platform = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  /** Files whose bytes are their own names: the fake platform echoes them back as labels. */
  async function images(count: number): Promise<string[]> {
    const names = Array.from({ length: count }, (_, i) => `img-${i}`);
    for (const name of names) await writeFile(join(dir, name), name);
    return names;
  }

  it('splits 70 images into calls of 32, 32 and 6, merges them in order, pinned to the first version', async () => {
    // Prepare
    const names = await images(70);
    platform = await new FakePlatform({ apiKey: 'k', version: 'v20250101000000-aaaaaa' }).start();
    const stdout = captureOutput();

    // Act: relative paths, read from the cwd given.
    const code = await runCli(['predict', 'shapes', ...names, '--top-k', '2', '--endpoint', platform.url], {
      stdout,
      stderr: captureOutput(),
      env: { TL_API_KEY: 'k' },
      cwd: dir,
    });

    // Assess
    expect(code).toBe(0);
    const calls = platform.ofKind('predict').map((e) => JSON.parse(e.body!.toString()) as { instances: unknown[]; topK?: number; version?: string });
    expect(calls.map((c) => c.instances.length)).toEqual([32, 32, 6]);
    expect(calls.map((c) => c.version)).toEqual([undefined, 'v20250101000000-aaaaaa', 'v20250101000000-aaaaaa']);
    expect(calls.every((c) => c.topK === 2)).toBe(true);
    const response = JSON.parse(stdout.text()) as { model: string; version: string; predictions: { class: { label: string } }[] };
    expect(response.model).toBe('shapes');
    expect(response.version).toBe('v20250101000000-aaaaaa');
    expect(response.predictions.map((p) => p.class.label)).toEqual(names);
  });

  it('sends the asked version on every call', async () => {
    // Prepare
    const names = await images(2);
    platform = await new FakePlatform().start();

    // Act
    const response = await predictImages({ endpoint: platform.url, model: 'shapes', images: names.map((n) => join(dir, n)), version: 'stable' });

    // Assess
    expect(response.version).toBe('stable');
    expect(JSON.parse(platform.ofKind('predict')[0].body!.toString())).toMatchObject({ version: 'stable' });
  });

  it('exits 1 naming a missing image, before calling the platform', async () => {
    // Prepare
    platform = await new FakePlatform().start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['predict', 'shapes', 'nope.jpg', '--endpoint', platform.url], { stdout: captureOutput(), stderr, env: {}, cwd: dir });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('cannot read image nope.jpg: ENOENT');
    expect(platform.events).toHaveLength(0);
  });

  it.each([
    [['predict', 'shapes'], 'at least one image'],
    [['predict', 'shapes', 'a.jpg', '--top-k', '0'], '--top-k must be an integer from 1 to 100'],
    [['predict', '../x', 'a.jpg'], 'model "../x"'],
  ])('exits 2 on bad usage: %j', async (argv, message) => {
    // Prepare
    const stderr = captureOutput();

    // Act
    const code = await runCli(argv, { stdout: captureOutput(), stderr, env: {}, cwd: dir });

    // Assess
    expect(code).toBe(2);
    expect(stderr.text()).toContain(message);
  });
});

describe('batchInstances', () => {
  it('cuts by count and by bytes, an oversized image alone', () => {
    // Prepare
    const encoded = ['aa', 'bb', 'cc', 'dddddddddd', 'ee'];

    // Act
    const batches = batchInstances(encoded, 2, 5);

    // Assess
    expect(batches).toEqual([['aa', 'bb'], ['cc'], ['dddddddddd'], ['ee']]);
  });
});

describe('tl models', () => {
  let platform: FakePlatform | undefined;
  afterEach(async () => {
    await platform?.stop();
    platform = undefined;
  });

  it('prints the JSON of GET /models', async () => {
    // Prepare
    platform = await new FakePlatform().start();
    const stdout = captureOutput();

    // Act
    const code = await runCli(['models', '--endpoint', platform.url], { stdout, stderr: captureOutput(), env: {}, cwd: '/' });

    // Assess
    expect(code).toBe(0);
    expect(JSON.parse(stdout.text())).toEqual({ models: [{ model: 'shapes', version: 'v20250101000000-abcdef' }] });
  });

  it('passes the platform error on for an unknown model', async () => {
    // Prepare
    platform = await new FakePlatform().start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['models', 'ghost', '--endpoint', platform.url], { stdout: captureOutput(), stderr, env: {}, cwd: '/' });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toBe('tl: no route GET /models/ghost (NotFound, HTTP 404)\n');
  });
});
