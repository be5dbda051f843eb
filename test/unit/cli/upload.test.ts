import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../shared/local/cli.js';
import { listDatasetFiles, uploadDataset } from '../../../shared/local/cli-upload.js';
import { FakePlatform, captureOutput } from './fake-platform.js';

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

describe('tl upload', () => {
  let dir: string;
  let platform: FakePlatform | undefined;
  let other: FakePlatform | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tl-upload-'));
  });
  afterEach(async () => {
    await platform?.stop();
    await other?.stop();
    platform = other = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads every file, then train.json last, after every other PUT completed', async () => {
    // Prepare: the first file is slow, so a client that does not wait would send train.json before it lands.
    await writeTree(dir, {
      'cat/1.jpg': 'c1',
      'cat/2.jpg': 'c2',
      'dog/1.png': 'd1',
      'dog/2.png': 'd2',
      'dog/3.webp': 'd3',
      'train.json': '{"training":{"epochs":3}}',
      '.DS_Store': 'junk',
      '.git/config': 'junk',
    });
    platform = await new FakePlatform({ apiKey: 'k1', putDelayMs: (p) => (p.endsWith('cat/1.jpg') ? 150 : 20) }).start();
    const stdout = captureOutput();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['upload', dir, '--model', 'pets', '--api-key', 'k1', '--endpoint', platform.url], { stdout, stderr, env: {}, cwd: dir });

    // Assess
    expect(code, stderr.text()).toBe(0);
    const puts = platform.ofKind('put-done').map((e) => e.path);
    expect(puts.slice().sort()).toEqual(['pets/cat/1.jpg', 'pets/cat/2.jpg', 'pets/dog/1.png', 'pets/dog/2.png', 'pets/dog/3.webp', 'pets/train.json']);
    const specStart = platform.events.findIndex((e) => e.kind === 'put-start' && e.path.includes('/pets/train.json'));
    const lastOtherDone = Math.max(...platform.events.flatMap((e, i) => (e.kind === 'put-done' && e.path !== 'pets/train.json' ? [i] : [])));
    expect(specStart).toBeGreaterThan(lastOtherDone);
    expect(JSON.parse(platform.uploaded.get('pets/train.json')!.toString())).toEqual({ training: { epochs: 3 }, model: 'pets' });
    expect(platform.uploaded.get('pets/dog/2.png')!.toString()).toBe('d2');
    // The headers the platform handed out are sent back; the key goes to its own origin.
    const catPut = platform.ofKind('put-start').find((e) => e.path.endsWith('cat/1.jpg'))!;
    expect(catPut.headers['content-type']).toBe('image/jpeg');
    expect(catPut.headers['x-upload-token']).toBe('tok');
    expect(catPut.headers['x-api-key']).toBe('k1');
    expect(stdout.text()).toContain('dataset pets');
    expect(stdout.text()).toContain('tl status pets --wait');
    expect(stderr.text()).toMatch(/uploading \[#{20}\] 100% 5\/5 files/);
  });

  it('generates {"model": <name>} when the folder has no train.json, into the named dataset', async () => {
    // Prepare
    await writeTree(dir, { 'a/1.jpg': 'x', 'b/1.jpg': 'y' });
    platform = await new FakePlatform().start();

    // Act
    const result = await uploadDataset({
      endpoint: platform.url,
      dir,
      model: 'shapes',
      dataset: 'shapes-2025',
      stdout: captureOutput(),
      stderr: captureOutput(),
    });

    // Assess
    expect(result).toMatchObject({ dataset: 'shapes-2025', model: 'shapes', files: 2, spec: 'generated' });
    expect(JSON.parse(platform.uploaded.get('shapes-2025/train.json')!.toString())).toEqual({ model: 'shapes' });
    expect(platform.ofKind('upload-urls').every((e) => e.path === '/datasets/shapes-2025/uploads')).toBe(true);
  });

  it('asks for upload URLs in batches no larger than the limit, train.json on its own', async () => {
    // Prepare
    await writeTree(dir, { 'a/1.jpg': '1', 'a/2.jpg': '2', 'a/3.jpg': '3', 'b/1.jpg': '4', 'b/2.jpg': '5' });
    platform = await new FakePlatform().start();

    // Act
    await uploadDataset({ endpoint: platform.url, dir, model: 'm', batchSize: 2, stdout: captureOutput(), stderr: captureOutput() });

    // Assess
    const batches = platform.ofKind('upload-urls').map((e) => (JSON.parse(e.body!.toString()) as { files: { path: string }[] }).files.map((f) => f.path));
    expect(batches).toEqual([['a/1.jpg', 'a/2.jpg'], ['a/3.jpg', 'b/1.jpg'], ['b/2.jpg'], ['train.json']]);
  });

  it('keeps at most the given number of PUTs in flight', async () => {
    // Prepare
    const files = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`a/${i}.jpg`, String(i)]));
    await writeTree(dir, files);
    platform = await new FakePlatform({ putDelayMs: () => 30 }).start();

    // Act
    await uploadDataset({ endpoint: platform.url, dir, model: 'm', concurrency: 3, stdout: captureOutput(), stderr: captureOutput() });

    // Assess
    expect(platform.maxConcurrentPuts).toBe(3);
  });

  it('does not send train.json when a file fails to upload', async () => {
    // Prepare
    await writeTree(dir, { 'a/1.jpg': '1', 'a/2.jpg': '2' });
    platform = await new FakePlatform({ putStatus: (p) => (p.endsWith('a/2.jpg') ? 500 : 200) }).start();
    const stderr = captureOutput();
    const { retries, retryDelayMs } = { retries: 1, retryDelayMs: 1 };

    // Act
    const failure = await uploadDataset({ endpoint: platform.url, dir, model: 'm', retries, retryDelayMs, stdout: captureOutput(), stderr }).catch(
      (e: Error) => e,
    );

    // Assess: tried twice, then gave up without triggering training.
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toContain('upload of a/2.jpg failed: disk on fire');
    expect(platform.ofKind('put-start').filter((e) => e.path.endsWith('a/2.jpg'))).toHaveLength(2);
    expect(platform.uploaded.has('m/train.json')).toBe(false);
  });

  it('never sends the API key to an upload URL on another origin', async () => {
    // Prepare: the platform hands out URLs on a second server, like presigned S3 URLs.
    await writeTree(dir, { 'a/1.jpg': '1' });
    other = await new FakePlatform().start();
    platform = await new FakePlatform({ apiKey: 'secret', uploadOrigin: other.url }).start();

    // Act
    await uploadDataset({ endpoint: platform.url, apiKey: 'secret', dir, model: 'm', stdout: captureOutput(), stderr: captureOutput() });

    // Assess
    const puts = other.ofKind('put-start');
    expect(puts.map((e) => e.path)).toEqual(['/_upload/m/a/1.jpg', '/_upload/m/train.json']);
    expect(puts.every((e) => e.headers['x-api-key'] === undefined)).toBe(true);
    expect(platform.ofKind('upload-urls').every((e) => e.headers['x-api-key'] === 'secret')).toBe(true);
  });

  it('refuses an invalid train.json before uploading anything', async () => {
    // Prepare
    await writeTree(dir, { 'a/1.jpg': '1', 'train.json': '{"training":{"epochs":"many"}}' });
    platform = await new FakePlatform().start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['upload', dir, '--model', 'm', '--endpoint', platform.url], { stdout: captureOutput(), stderr, env: {}, cwd: dir });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toMatch(/train\.json is not a valid training spec:\n {2}training\.epochs:/);
    expect(platform.events).toHaveLength(0);
  });

  it('refuses a train.json that is not JSON', async () => {
    // Prepare
    await writeTree(dir, { 'a/1.jpg': '1', 'train.json': '{"model": ' });
    platform = await new FakePlatform().start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['upload', dir, '--model', 'm', '--endpoint', platform.url], { stdout: captureOutput(), stderr, env: {}, cwd: dir });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('train.json is not valid JSON');
    expect(platform.events).toHaveLength(0);
  });

  it.each([
    [['upload', '.', '--model', '../x'], '--model "../x"'],
    [['upload', '.', '--model', 'ok', '--dataset', 'a/b'], '--dataset "a/b"'],
    [['upload', '.'], '--model <name> is required'],
    [['upload', '--model', 'ok'], 'exactly one folder'],
    [['upload', '.', '--model', 'ok', '--top-k', '3'], 'upload takes no option --top-k'],
  ])('exits 2 on bad usage: %j', async (argv, message) => {
    // Prepare
    const stderr = captureOutput();

    // Act
    const code = await runCli(argv, { stdout: captureOutput(), stderr, env: {}, cwd: dir });

    // Assess
    expect(code).toBe(2);
    expect(stderr.text()).toContain(message);
  });

  it('exits 1 when the folder does not exist', async () => {
    // Prepare
    const stderr = captureOutput();

    // Act
    const code = await runCli(['upload', join(dir, 'nope'), '--model', 'm', '--endpoint', 'http://127.0.0.1:9'], {
      stdout: captureOutput(),
      stderr,
      env: {},
      cwd: dir,
    });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('is not a directory');
  });
});

describe('listDatasetFiles', () => {
  it('lists files recursively with / paths, sorted, skipping dotfiles and dot-folders', async () => {
    // Prepare
    const dir = await mkdtemp(join(tmpdir(), 'tl-list-'));
    await writeTree(dir, { 'b/2.jpg': '22', 'a/1.jpg': '1', '.hidden/x.jpg': 'x', 'a/.DS_Store': 'x', 'manifest.jsonl': '{}' });

    // Act
    const files = await listDatasetFiles(dir);

    // Assess
    expect(files.map((f) => [f.path, f.size])).toEqual([
      ['a/1.jpg', 1],
      ['b/2.jpg', 2],
      ['manifest.jsonl', 2],
    ]);
    await rm(dir, { recursive: true, force: true });
  });
});
