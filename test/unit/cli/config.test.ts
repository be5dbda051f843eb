import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../shared/local/cli.js';
import { readDefaultApiKey, resolveConnection } from '../../../shared/local/cli-config.js';
import { FakePlatform, captureOutput } from './fake-platform.js';

const tenants = (list: unknown) => JSON.stringify({ tenants: list });

describe('resolveConnection', () => {
  let cwd: string;
  beforeEach(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'tl-config-'));
    await mkdir(join(cwd, '.data'));
    await writeFile(
      join(cwd, '.data', 'tenants.json'),
      tenants([
        { id: 'acme', apiKey: 'acme-key' },
        { id: 'default', apiKey: 'local-key', default: true },
      ]),
    );
  });
  afterEach(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  it('defaults to the local platform and its default tenant key', async () => {
    // Act
    const conn = await resolveConnection({ env: {}, cwd });

    // Assess
    expect(conn).toEqual({ endpoint: 'http://127.0.0.1:8080', apiKey: 'local-key' });
  });

  it('reads tenants.json from TL_DATA_DIR, relative to the working directory', async () => {
    // Prepare
    await mkdir(join(cwd, 'elsewhere'));
    await writeFile(join(cwd, 'elsewhere', 'tenants.json'), tenants([{ id: 'x', apiKey: 'elsewhere-key' }]));

    // Act
    const conn = await resolveConnection({ endpoint: 'http://localhost:9000/', env: { TL_DATA_DIR: 'elsewhere' }, cwd });

    // Assess: no tenant marked default, so the first one; trailing slash dropped.
    expect(conn).toEqual({ endpoint: 'http://localhost:9000', apiKey: 'elsewhere-key' });
  });

  it('prefers flags over the environment over the file', async () => {
    // Act
    const fromEnv = await resolveConnection({ env: { TL_API_KEY: 'env-key', TL_ENDPOINT: 'http://127.0.0.1:9999' }, cwd });
    const fromFlags = await resolveConnection({ endpoint: 'http://[::1]:1234', apiKey: 'flag-key', env: { TL_API_KEY: 'env-key' }, cwd });

    // Assess
    expect(fromEnv).toEqual({ endpoint: 'http://127.0.0.1:9999', apiKey: 'env-key' });
    expect(fromFlags).toEqual({ endpoint: 'http://[::1]:1234', apiKey: 'flag-key' });
  });

  it('never reads the local key for a remote endpoint', async () => {
    // Act
    const conn = await resolveConnection({ endpoint: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod', env: {}, cwd });

    // Assess
    expect(conn).toEqual({ endpoint: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod', apiKey: undefined });
  });

  it('rejects an endpoint that is not an http(s) URL as bad usage', async () => {
    // Act
    const failure = await resolveConnection({ endpoint: 'localhost:8080', env: {}, cwd }).catch((e: { exitCode: number; message: string }) => e);

    // Assess
    expect(failure).toMatchObject({ exitCode: 2, message: expect.stringContaining('--endpoint must be an http(s) URL') });
  });
});

describe('readDefaultApiKey', () => {
  it.each([
    ['missing file', undefined, undefined],
    ['not JSON', '{', undefined],
    ['no tenants', '{"other": 1}', undefined],
    ['a bare array', JSON.stringify([{ apiKey: 'a' }]), 'a'],
    ['tenants without keys skipped', tenants([{ id: 'x' }, { id: 'y', apiKey: 'y-key' }]), 'y-key'],
    ['default wins', tenants([{ apiKey: 'first' }, { apiKey: 'second', default: true }]), 'second'],
  ])('%s', async (_name, content, expected) => {
    // Prepare
    const dir = await mkdtemp(join(tmpdir(), 'tl-tenants-'));
    if (content !== undefined) await writeFile(join(dir, 'tenants.json'), content);

    // Act
    const key = await readDefaultApiKey(dir);

    // Assess
    expect(key).toBe(expected);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('tl against the network', () => {
  let platform: FakePlatform | undefined;
  afterEach(async () => {
    await platform?.stop();
    platform = undefined;
  });

  it('sends the default tenant key from tenants.json to a loopback platform', async () => {
    // Prepare
    const cwd = await mkdtemp(join(tmpdir(), 'tl-key-'));
    await writeFile(join(cwd, 'tenants.json'), tenants([{ id: 'default', apiKey: 'from-file', default: true }]));
    platform = await new FakePlatform({ apiKey: 'from-file' }).start();

    // Act
    const code = await runCli(['models', '--endpoint', platform.url], {
      stdout: captureOutput(),
      stderr: captureOutput(),
      env: { TL_DATA_DIR: cwd },
      cwd: '/',
    });

    // Assess
    expect(code).toBe(0);
    expect(platform.ofKind('models')[0].headers['x-api-key']).toBe('from-file');
    await rm(cwd, { recursive: true, force: true });
  });

  it('says the platform is not running when the connection is refused', async () => {
    // Prepare: a port that was free a moment ago.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const stderr = captureOutput();

    // Act
    const code = await runCli(['status', 'shapes', '--wait'], {
      stdout: captureOutput(),
      stderr,
      env: { TL_ENDPOINT: `http://127.0.0.1:${port}`, TL_API_KEY: 'k' },
      cwd: '/',
    });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toBe(`tl: cannot reach http://127.0.0.1:${port}: is \`npm start\` running? (ECONNREFUSED)\n`);
  });
});

describe('bin/tl.js', () => {
  const bin = fileURLToPath(new URL('../../../bin/tl.js', import.meta.url));
  let platform: FakePlatform | undefined;
  afterEach(async () => {
    await platform?.stop();
    platform = undefined;
  });

  it('runs from any working directory and exits with the command code', async () => {
    // Prepare
    platform = await new FakePlatform({ apiKey: 'k' }).start();
    const cwd = tmpdir();

    // Act
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'models'], {
      cwd,
      env: { ...process.env, TL_ENDPOINT: platform.url, TL_API_KEY: 'k' },
    });
    const usage = await promisify(execFile)(process.execPath, [bin, 'frobnicate'], { cwd }).catch((e: { code: number; stderr: string }) => e);

    // Assess
    expect(JSON.parse(stdout)).toMatchObject({ models: [{ model: 'shapes' }] });
    expect(usage).toMatchObject({ code: 2 });
    expect((usage as { stderr: string }).stderr).toContain('tl: unknown command "frobnicate"');
  });
});
