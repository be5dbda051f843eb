import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { apiEvent } from '../helpers/api.js';
import { startTestPlatform } from '../helpers/platform.js';
import { preferShortGcPauses } from '../../shared/heap.js';
import { ConfigError } from '../../shared/schemas/env.js';

// A V8 flag cannot be read back from JavaScript: the wiring is checked by recording what would
// be set (and so the test worker's own heap is left alone).
const setFlags = vi.hoisted(() => vi.fn());
vi.mock('node:v8', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:v8')>()), setFlagsFromString: setFlags }));

describe('preferShortGcPauses', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('gives the heap half its live size of room by default', () => {
    // Prepare
    const set = vi.fn();

    // Act
    preferShortGcPauses({}, set);
    preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: '' }, set);

    // Assess
    expect(set.mock.calls).toEqual([['--heap-growing-percent=50'], ['--heap-growing-percent=50']]);
  });

  it('TL_HEAP_GROWING_PERCENT=0 hands the choice back to V8', () => {
    // Prepare
    const set = vi.fn();

    // Act
    preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: '0' }, set);

    // Assess
    expect(set.mock.calls).toEqual([['--heap-growing-percent=0']]);
  });

  it('refuses a value that is not a percentage V8 takes, naming the variable, and sets nothing', () => {
    // Prepare
    const set = vi.fn();

    // Act + Assess
    for (const bad of ['lots', '-5', '12.5', '301']) {
      expect(() => preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: bad }, set)).toThrow(ConfigError);
      expect(() => preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: bad }, set)).toThrow(/TL_HEAP_GROWING_PERCENT/);
    }
    expect(set).not.toHaveBeenCalled();
    preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: '300' }, set);
    expect(set.mock.calls).toEqual([['--heap-growing-percent=300']]);
  });

  it('is applied by the predict Lambda at its cold start, not when its module is imported', async () => {
    // Prepare: a local bucket for the Lambda's deps.
    const bucket = await mkdtemp(path.join(tmpdir(), 'tl-heap-'));
    vi.stubEnv('STORE_KIND', 'local');
    vi.stubEnv('BUCKET_DIR', bucket);
    vi.stubEnv('TL_HEAP_GROWING_PERCENT', '');
    onTestFinished(() => rm(bucket, { recursive: true, force: true }));
    vi.resetModules(); // this file's helpers imported the handler already: load it afresh
    setFlags.mockClear();
    const { handler } = await import('../../functions/predict/handler.js');
    const atImport = setFlags.mock.calls.length;

    // Act
    const res = await handler(apiEvent('GET', '/models', null));

    // Assess
    expect(atImport).toBe(0);
    expect(res.statusCode).toBe(200);
    expect(setFlags.mock.calls).toEqual([['--heap-growing-percent=50']]);
  });

  it('is applied by the local platform when it starts', async () => {
    // Prepare
    vi.stubEnv('TL_HEAP_GROWING_PERCENT', '40');
    setFlags.mockClear();

    // Act
    const t = await startTestPlatform({ runner: { standby: false } });
    await t.close();

    // Assess
    expect(setFlags.mock.calls).toEqual([['--heap-growing-percent=40']]);
  });
});
