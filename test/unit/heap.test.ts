import { afterEach, describe, expect, it, vi } from 'vitest';

// The flag is process-wide: record what would be set instead of setting it in the test worker.
const setFlags = vi.hoisted(() => vi.fn());
vi.mock('node:v8', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:v8')>()), setFlagsFromString: setFlags }));

// heap.ts applies the flag once per process: each test loads a fresh copy of the modules.
async function freshHeap() {
  vi.resetModules();
  return import('../../shared/heap.js');
}

describe('preferShortGcPauses', () => {
  afterEach(() => setFlags.mockReset());

  it('gives the heap half its live size of room by default, once per process', async () => {
    // Prepare
    const { preferShortGcPauses } = await freshHeap();

    // Act
    preferShortGcPauses({});
    preferShortGcPauses({});

    // Assess
    expect(setFlags.mock.calls).toEqual([['--heap-growing-percent=50']]);
  });

  it('TL_HEAP_GROWING_PERCENT=0 hands the choice back to V8', async () => {
    const { preferShortGcPauses } = await freshHeap();
    preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: '0' });
    expect(setFlags.mock.calls).toEqual([['--heap-growing-percent=0']]);
  });

  it('refuses a value that is not a percentage, naming the variable', async () => {
    const { preferShortGcPauses } = await freshHeap();
    expect(() => preferShortGcPauses({ TL_HEAP_GROWING_PERCENT: 'lots' })).toThrow(/TL_HEAP_GROWING_PERCENT must be an integer from 0 to 400, got "lots"/);
    expect(setFlags).not.toHaveBeenCalled();
  });

  it('is applied by the inference API handler (the local server and the Lambda function build theirs with it)', async () => {
    // Prepare: a fresh module graph, so no handler was built in it yet.
    vi.resetModules();

    // Act: importing the module builds the Lambda entry's handler with createHandler.
    await import('../../functions/predict/handler.js');

    // Assess
    expect(setFlags.mock.calls).toEqual([['--heap-growing-percent=50']]);
  });
});
