import { afterEach, describe, expect, it, vi } from 'vitest';
import { preferShortGcPauses } from '../../shared/heap.js';
import { ConfigError } from '../../shared/schemas/env.js';

// A V8 flag cannot be read back from JavaScript: the handler's wiring is checked by recording
// what it would set (and so the test worker's own heap is left alone).
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

  it('is applied by the inference API handler (the local server and the Lambda function build theirs with it)', async () => {
    // Prepare
    vi.stubEnv('TL_HEAP_GROWING_PERCENT', '');
    setFlags.mockClear();

    // Act: importing the module builds the Lambda entry's handler with createHandler; one more local one.
    const { createHandler } = await import('../../functions/predict/handler.js');
    createHandler(async () => {
      throw new Error('not called: no request is made');
    });

    // Assess
    expect(setFlags.mock.calls).toEqual([['--heap-growing-percent=50'], ['--heap-growing-percent=50']]);
  });
});
