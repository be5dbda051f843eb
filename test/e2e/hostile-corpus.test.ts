/**
 * A hostile-input corpus over every route of the embedded gateway, against a real
 * platform serving a real trained model: each hand-written case must get a clean
 * 4xx with the JSON error of the one vocabulary, and property-based cases
 * (fast-check) throw arbitrary bodies, names and images at the same routes. After
 * all of it the server still answers and the model still predicts.
 */
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateShapesImages } from '../../shared/local/demo-data.js';
import { ErrorCodeSchema } from '../../shared/schemas/errors.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

/** A PNG whose header declares `width`×`height` pixels but carries almost no data: a decompression bomb's shape. */
function pngDeclaring(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    // The CRC is left zero: a decoder must refuse the file either way, never allocate width×height×4 bytes.
    return Buffer.concat([len, Buffer.from(type, 'ascii'), data, Buffer.alloc(4)]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Every answer to a bad request: a 4xx whose body is `{"error":{"code","message"}}` with a code of the vocabulary. */
function expectCleanClientError(a: Answer, why: string): void {
  expect(a.status, `${why}: ${JSON.stringify(a.body)}`).toBeGreaterThanOrEqual(400);
  expect(a.status, `${why}: ${JSON.stringify(a.body)}`).toBeLessThan(500);
  const error = (a.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  expect(ErrorCodeSchema.safeParse(error?.code).success, `${why}: code ${JSON.stringify(error?.code)}`).toBe(true);
  expect(typeof error?.message, why).toBe('string');
}

describe('hostile-input corpus over every route (embedded gateway)', () => {
  let t: TestPlatform;
  let goodImage: string;
  let send: (method: string, path: string, body?: string | Buffer, headers?: Record<string, string>) => Promise<Answer>;

  beforeAll(async () => {
    t = await startTestPlatform();
    const images = await generateShapesImages({ perClass: 8, seed: 7 });
    await t.upload('corpus', [
      ...images.map((im, i) => ({ path: `${im.label}/${i}.png`, data: im.buffer })),
      { path: 'train.json', data: JSON.stringify({ model: 'corpus', training: { epochs: 5 } }) },
    ]);
    const job = await t.waitForJob('corpus');
    expect(job.state, job.error?.message).toBe('succeeded');
    goodImage = images[0].buffer.toString('base64');
    send = async (method, path, body, headers = {}) => {
      const res = await fetch(`${t.platform.url}${path}`, {
        method,
        headers: { 'x-api-key': t.apiKey, 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : new Uint8Array(Buffer.from(body)),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* left as text: the assertion names it */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    };
  }, 300_000);
  afterAll(async () => t?.close());

  const predict = (instances: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ instances, ...extra });
  const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

  // [why, method, path, body, headers, expected status, expected code]
  type Case = [string, string, string, (() => string | Buffer) | undefined, Record<string, string>, number, string];
  const cases = (): Case[] => [
    // Authentication, on every API route.
    ...(
      [
        'GET /models',
        'GET /models/corpus',
        'GET /models/corpus/job',
        'POST /models/corpus/predict',
        'POST /models/corpus/rollback',
        'POST /datasets/d/uploads',
      ] as const
    ).flatMap((r): Case[] => {
      const [method, path] = r.split(' ');
      return [
        [`${r} without a key`, method, path, undefined, { 'x-api-key': '' }, 403, 'INVALID_API_KEY'],
        [`${r} with a wrong key`, method, path, undefined, { 'x-api-key': 'tl_' + 'x'.repeat(40) }, 403, 'INVALID_API_KEY'],
      ];
    }),
    ['a 4 KB API key', 'GET', '/models', undefined, { 'x-api-key': 'k'.repeat(4 * 1024) }, 403, 'INVALID_API_KEY'],
    ['a 20 KB API key (headers too large)', 'GET', '/models', undefined, { 'x-api-key': 'k'.repeat(20 * 1024) }, 431, 'HEADERS_TOO_LARGE'],
    // Paths and methods.
    ['unknown route', 'GET', '/admin', undefined, {}, 404, 'NOT_FOUND'],
    ['PATCH on a model', 'PATCH', '/models/corpus', undefined, {}, 405, 'METHOD_NOT_ALLOWED'],
    ['DELETE on predict', 'DELETE', '/models/corpus/predict', undefined, {}, 405, 'METHOD_NOT_ALLOWED'],
    ['GET on uploads', 'GET', '/datasets/d/uploads', undefined, {}, 405, 'METHOD_NOT_ALLOWED'],
    // (An encoded ".." never leaves fetch, which folds it: test/unit/local/hostile-requests.test.ts sends it over a raw socket.)
    ['encoded "/" in a model', 'GET', '/models/a%2Fb', undefined, {}, 400, 'INVALID_PATH'],
    ['encoded backslash in a model', 'GET', '/models/a%5Cb/job', undefined, {}, 400, 'INVALID_PATH'],
    ['NUL in a model', 'GET', '/models/a%00b', undefined, {}, 400, 'INVALID_MODEL_NAME'],
    ['broken percent-encoding', 'GET', '/models/%E0%A4', undefined, {}, 400, 'INVALID_PATH'],
    ['a model name of 300 characters', 'GET', `/models/${'m'.repeat(300)}`, undefined, {}, 400, 'INVALID_MODEL_NAME'],
    ['a model name with a space', 'GET', '/models/a%20b', undefined, {}, 400, 'INVALID_MODEL_NAME'],
    ['an unknown model', 'GET', '/models/nobody', undefined, {}, 404, 'MODEL_NOT_FOUND'],
    ['the job of an unknown model', 'GET', '/models/nobody/job', undefined, {}, 404, 'JOB_NOT_FOUND'],
    ['a version that walks out', 'GET', `/models/corpus?version=${encodeURIComponent('../../tenants')}`, undefined, {}, 400, 'INVALID_VERSION'],
    ['a version that does not exist', 'GET', '/models/corpus?version=v20000101000000-abcdef', undefined, {}, 404, 'MODEL_NOT_FOUND'],
    ['rollback with no previous version', 'POST', '/models/corpus/rollback', () => '{}', {}, 409, 'NO_PREVIOUS_VERSION'],
    // Predict bodies.
    ['an empty body', 'POST', '/models/corpus/predict', () => '', {}, 400, 'INVALID_REQUEST'],
    ['a body that is not JSON', 'POST', '/models/corpus/predict', () => 'instances=1', {}, 400, 'INVALID_JSON'],
    ['JSON null', 'POST', '/models/corpus/predict', () => 'null', {}, 400, 'INVALID_REQUEST'],
    ['a JSON array', 'POST', '/models/corpus/predict', () => '[]', {}, 400, 'INVALID_REQUEST'],
    ['JSON nested 100,000 deep', 'POST', '/models/corpus/predict', () => '['.repeat(100_000) + ']'.repeat(100_000), {}, 400, 'INVALID_REQUEST'],
    ['instances not an array', 'POST', '/models/corpus/predict', () => '{"instances":{"image":"aGk="}}', {}, 400, 'INVALID_REQUEST'],
    ['no instances', 'POST', '/models/corpus/predict', () => predict([]), {}, 400, 'INVALID_REQUEST'],
    ['33 instances', 'POST', '/models/corpus/predict', () => predict(Array.from({ length: 33 }, () => ({ image: goodImage }))), {}, 400, 'INVALID_REQUEST'],
    ['an unknown field', 'POST', '/models/corpus/predict', () => predict([{ image: goodImage }], { admin: true }), {}, 400, 'INVALID_REQUEST'],
    [
      'a __proto__ field',
      'POST',
      '/models/corpus/predict',
      () => `{"instances":[{"image":"${goodImage}"}],"__proto__":{"polluted":1}}`,
      {},
      400,
      'INVALID_REQUEST',
    ],
    ['an unknown task', 'POST', '/models/corpus/predict', () => predict([{ image: goodImage }], { tasks: ['nope'] }), {}, 400, 'UNKNOWN_TASK'],
    ['topK of a million', 'POST', '/models/corpus/predict', () => predict([{ image: goodImage }], { topK: 1e6 }), {}, 400, 'INVALID_REQUEST'],
    ['topK NaN-like', 'POST', '/models/corpus/predict', () => predict([{ image: goodImage }], { topK: '3' }), {}, 400, 'INVALID_REQUEST'],
    [
      'a version as a path in the body',
      'POST',
      '/models/corpus/predict',
      () => predict([{ image: goodImage }], { version: '../x' }),
      {},
      400,
      'INVALID_REQUEST',
    ],
    ['both image and features', 'POST', '/models/corpus/predict', () => predict([{ image: goodImage, features: [1] }]), {}, 400, 'INVALID_REQUEST'],
    ['features to an image model', 'POST', '/models/corpus/predict', () => predict([{ features: [1, 2, 3] }]), {}, 400, 'INVALID_INPUT'],
    ['an empty image', 'POST', '/models/corpus/predict', () => predict([{ image: '' }]), {}, 400, 'INVALID_REQUEST'],
    ['base64 with spaces and symbols', 'POST', '/models/corpus/predict', () => predict([{ image: '!!!! ####' }]), {}, 400, 'INVALID_BASE64'],
    ['text as an image', 'POST', '/models/corpus/predict', () => predict([{ image: b64('hello, I am not a picture') }]), {}, 400, 'INVALID_IMAGE'],
    [
      'a truncated PNG',
      'POST',
      '/models/corpus/predict',
      () => predict([{ image: b64(Buffer.from(goodImage, 'base64').subarray(0, 60)) }]),
      {},
      400,
      'INVALID_IMAGE',
    ],
    [
      'a PNG declaring 60000×60000 pixels',
      'POST',
      '/models/corpus/predict',
      () => predict([{ image: b64(pngDeclaring(60_000, 60_000)) }]),
      {},
      400,
      'INVALID_IMAGE',
    ],
    ['a PNG declaring 0×0 pixels', 'POST', '/models/corpus/predict', () => predict([{ image: b64(pngDeclaring(0, 0)) }]), {}, 400, 'INVALID_IMAGE'],
    ['a GIF header', 'POST', '/models/corpus/predict', () => predict([{ image: b64('GIF89a\u0001\u0000\u0001\u0000') }]), {}, 400, 'INVALID_IMAGE'],
    [
      'a JPEG start marker only',
      'POST',
      '/models/corpus/predict',
      () => predict([{ image: b64(Buffer.from([0xff, 0xd8, 0xff, 0xe0])) }]),
      {},
      400,
      'INVALID_IMAGE',
    ],
    ['a 20 MB body', 'POST', '/models/corpus/predict', () => predict([{ image: 'A'.repeat(20 * 1024 * 1024) }]), {}, 413, 'PAYLOAD_TOO_LARGE'],
    // Upload requests.
    ['uploads: no files', 'POST', '/datasets/d/uploads', () => '{"files":[]}', {}, 400, 'INVALID_REQUEST'],
    [
      'uploads: 1001 files',
      'POST',
      '/datasets/d/uploads',
      () => JSON.stringify({ files: Array.from({ length: 1001 }, (_, i) => ({ path: `${i}.png` })) }),
      {},
      400,
      'INVALID_REQUEST',
    ],
    ['uploads: an absolute path', 'POST', '/datasets/d/uploads', () => '{"files":[{"path":"/etc/passwd"}]}', {}, 400, 'INVALID_REQUEST'],
    ['uploads: a ".." path', 'POST', '/datasets/d/uploads', () => '{"files":[{"path":"a/../../tenants.json"}]}', {}, 400, 'INVALID_REQUEST'],
    ['uploads: a NUL in a path', 'POST', '/datasets/d/uploads', () => '{"files":[{"path":"a\\u0000.png"}]}', {}, 400, 'INVALID_REQUEST'],
    [
      'uploads: CRLF in a content type',
      'POST',
      '/datasets/d/uploads',
      () => '{"files":[{"path":"a.png","contentType":"image/png\\r\\nx-evil: 1"}]}',
      {},
      400,
      'INVALID_REQUEST',
    ],
    ['uploads: a dataset name with a dot', 'POST', '/datasets/a.b/uploads', () => '{"files":[{"path":"a.png"}]}', {}, 400, 'INVALID_DATASET_NAME'],
    // Signed object uploads.
    ['PUT without a signature', 'PUT', '/_objects/default/datasets/d/a.png', () => 'x', {}, 403, 'INVALID_SIGNATURE'],
    ['PUT with an expired signature', 'PUT', `/_objects/default/datasets/d/a.png?expires=1&sig=${'a'.repeat(64)}`, () => 'x', {}, 403, 'INVALID_SIGNATURE'],
    [
      'PUT with a signature in upper case',
      'PUT',
      `/_objects/default/datasets/d/a.png?expires=9999999999&sig=${'A'.repeat(64)}`,
      () => 'x',
      {},
      403,
      'INVALID_SIGNATURE',
    ],
    ['PUT to an unknown tenant', 'PUT', `/_objects/nobody/datasets/d/a.png?expires=9999999999&sig=${'a'.repeat(64)}`, () => 'x', {}, 403, 'INVALID_SIGNATURE'],
    ['PUT outside datasets/', 'PUT', `/_objects/default/tenants.json?expires=9999999999&sig=${'a'.repeat(64)}`, () => 'x', {}, 403, 'INVALID_SIGNATURE'],
    ['POST to an object', 'POST', '/_objects/default/datasets/d/a.png', () => 'x', {}, 405, 'METHOD_NOT_ALLOWED'],
  ];

  it('answers each hand-written hostile request with a clean 4xx and its code', async () => {
    const all = cases();
    expect(all.length).toBeGreaterThanOrEqual(60);
    const wrong: unknown[] = [];
    for (const [why, method, path, body, headers, status, code] of all) {
      const a = await send(method, path, body?.(), headers).catch((err: Error) => {
        throw new Error(`${why}: ${err.message} (${String((err.cause as Error | undefined)?.message)})`);
      });
      expectCleanClientError(a, why);
      const got = { why, status: a.status, code: (a.body as { error: { code: string } }).error.code };
      if (got.status !== status || got.code !== code) wrong.push({ ...got, expected: { status, code } });
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it('never answers an arbitrary predict body with a 5xx (property-based)', async () => {
    const instance = fc.oneof(
      fc.record({
        image: fc.oneof(
          fc.string(),
          fc.base64String(),
          fc.uint8Array({ maxLength: 200 }).map((u) => b64(Buffer.from(u))),
        ),
      }),
      fc.record({ features: fc.array(fc.oneof(fc.double(), fc.integer(), fc.constant(null)), { maxLength: 20 }) }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    );
    const body = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc
        .record(
          {
            instances: fc.array(instance, { maxLength: 4 }),
            topK: fc.option(fc.jsonValue({ maxDepth: 1 })),
            tasks: fc.option(fc.array(fc.string(), { maxLength: 3 })),
          },
          { requiredKeys: ['instances'] },
        )
        .map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 200 }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const a = await send('POST', '/models/corpus/predict', text);
        if (a.status === 200) return; // an arbitrary body can be a valid request (a random image can never be; shapes can)
        expectCleanClientError(a, `predict body ${text.slice(0, 120)}`);
      }),
      { numRuns: 60, seed: 1 },
    );
  }, 120_000);

  it('never answers an arbitrary model name, version or dataset name with a 5xx (property-based)', async () => {
    const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(
        name,
        fc.constantFrom('GET /models/{}', 'GET /models/{}/job', 'GET /models/corpus?version={}', 'POST /datasets/{}/uploads', 'POST /models/{}/rollback'),
        async (n, route) => {
          const [method, template] = route.split(' ');
          const a = await send(method, template.replace('{}', encodeURIComponent(n)), method === 'POST' ? '{"files":[{"path":"a.png"}]}' : undefined);
          if (a.status === 200) return; // a valid dataset name gets its upload URLs
          expectCleanClientError(a, `${route} with ${JSON.stringify(n)}`);
        },
      ),
      { numRuns: 80, seed: 2 },
    );
  }, 120_000);

  it('never answers arbitrary upload requests with a 5xx (property-based)', async () => {
    const file = fc.record(
      { path: fc.string({ unit: 'binary', maxLength: 30 }), contentType: fc.option(fc.string({ unit: 'binary', maxLength: 30 }), { nil: undefined }) },
      { requiredKeys: ['path'] },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(file, { maxLength: 5 }), async (files) => {
        const a = await send('POST', '/datasets/fuzz/uploads', JSON.stringify({ files }));
        if (a.status === 200) {
          // Every URL handed out stays inside the dataset's folder.
          for (const u of (a.body as { uploads: Array<{ key: string }> }).uploads) expect(u.key.startsWith('datasets/fuzz/')).toBe(true);
          return;
        }
        expectCleanClientError(a, `uploads ${JSON.stringify(files).slice(0, 120)}`);
      }),
      { numRuns: 60, seed: 3 },
    );
  }, 120_000);

  it('still serves the model after the corpus', async () => {
    const res = await t.call('POST', '/models/corpus/predict', { instances: [{ image: goodImage }] });
    expect(res.status).toBe(200);
    expect(res.body.predictions).toHaveLength(1);
    expect((await t.call('GET', '/health')).status).toBe(200);
  });
});
