/**
 * Local cold-start figure of the bundled predict function: a fresh Node process
 * imports the bundle (as Lambda's init does) and serves two predicts from a
 * folder store. Measured on this machine, not on Lambda: Lambda adds fetching
 * the code and starting the runtime, and its CPU share depends on memory size.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.js';
import { MOBILENET_V2_EMBEDDING, resolveBase } from '../../shared/ml/base-models.js';
import { buildHeadModel } from '../../shared/ml/architectures.js';
import { saveModel } from '../../shared/ml/model-io.js';
import { newVersionId, setAlias, versionPrefix, writeMetadata } from '../../shared/models/registry.js';
import { TrainSpecSchema } from '../../shared/schemas/spec.js';

/**
 * Publishes an (untrained) classification head on the MobileNetV2 base, as a
 * training job would, so that predict runs the full path: base + head.
 */
export async function publishColdStartModel(bucketDir: string, model = 'coldstart'): Promise<string> {
  const store = new FsObjectStore({ root: bucketDir });
  await resolveBase(store, 'mobilenet_v2');
  const tasks = [{ name: 'class', type: 'classification' as const, auxiliary: false, labels: ['a', 'b', 'c'] }];
  const head = await buildHeadModel({ embeddingSize: MOBILENET_V2_EMBEDDING.size, tasks, sharing: { method: 'hard', trunk: [] } });
  const version = newVersionId();
  await saveModel(head, store, versionPrefix(model, version));
  await writeMetadata(store, {
    model,
    version,
    createdAt: new Date().toISOString(),
    kind: 'train',
    input: { type: 'image', shape: [224, 224, 3] },
    base: { name: 'mobilenet_v2', embeddingSize: MOBILENET_V2_EMBEDDING.size },
    tasks,
    dataset: { name: model, hash: 'coldstart' },
    spec: TrainSpecSchema.parse({ base: 'mobilenet_v2' }),
    metrics: {},
  } as never);
  await setAlias(store, model, 'latest', version);
  return model;
}

export interface ColdStartResult {
  importMs: number;
  firstPredictMs: number;
  secondPredictMs: number;
  status: number;
  backend: string;
}

const CHILD = `
const [handlerUrl, model, image] = process.argv.slice(1);
const t0 = performance.now();
const { handler } = await import(handlerUrl);
const t1 = performance.now();
const event = { httpMethod: 'POST', resource: '/models/{model}/predict', path: '/models/' + model + '/predict', pathParameters: { model }, body: JSON.stringify({ instances: [{ image }] }), isBase64Encoded: false, headers: {}, queryStringParameters: null, requestContext: {} };
const r1 = await handler(event);
const t2 = performance.now();
const r2 = await handler(event);
const t3 = performance.now();
if (r1.statusCode !== 200) process.stderr.write(r1.body + '\\n');
process.stdout.write('\\n' + JSON.stringify({ importMs: t1 - t0, firstPredictMs: t2 - t1, secondPredictMs: t3 - t2, status: r1.statusCode === 200 ? r2.statusCode : r1.statusCode }));
`;

export async function measureColdStart(opts: { handlerFile: string; bucketDir: string; model: string }): Promise<ColdStartResult> {
  const image = (
    await sharp({ create: { width: 320, height: 240, channels: 3, background: '#3366cc' } })
      .jpeg()
      .toBuffer()
  ).toString('base64');
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, pathToFileURL(opts.handlerFile).href, opts.model, image], {
    env: { PATH: process.env.PATH, STORE_KIND: 'local', BUCKET_DIR: opts.bucketDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const [code] = await once(child, 'exit');
  if (code !== 0 || !out) throw new Error(`cold-start child failed (${code}): ${err}`);
  const backend = /using (\S+ \(backend \w+\))/.exec(err)?.[1] ?? 'unknown backend';
  // The handler writes its own JSON log and EMF lines to stdout, as on Lambda; the result is the last line.
  const last = out.trim().split('\n').at(-1)!;
  return { ...(JSON.parse(last) as Omit<ColdStartResult, 'backend'>), backend };
}
