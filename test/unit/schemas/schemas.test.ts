import { describe, expect, it } from 'vitest';
import {
  AliasSchema,
  BaseModelDescriptorSchema,
  DatasetReportSchema,
  JobStatusSchema,
  ManifestLineSchema,
  ModelMetadataSchema,
  NameSchema,
  PlatformEnvSchema,
  PredictRequestSchema,
  PredictResponseSchema,
  TrainJobEnvSchema,
  TrainSpecSchema,
  UploadRequestSchema,
  tasksOf,
} from '../../../shared/schemas/index.js';

const now = new Date().toISOString();

describe('NameSchema', () => {
  it.each(['pets', 'my-model_2', 'A1'])('accepts %s', (n) => expect(NameSchema.safeParse(n).success).toBe(true));
  it.each(['', '../x', 'a/b', '.hidden', '-x', 'x'.repeat(64), 'a b'])('rejects %j', (n) => expect(NameSchema.safeParse(n).success).toBe(false));
});

describe('TrainSpecSchema', () => {
  it('fills defaults for an empty spec', () => {
    const spec = TrainSpecSchema.parse({});
    expect(spec.base).toBe('mobilenet_v2');
    expect(spec.mode).toBe('train');
    expect(spec.sharing).toEqual({ method: 'hard', trunk: [128] });
    expect(spec.training.epochs).toBe(100);
    expect(tasksOf(spec)).toEqual([expect.objectContaining({ name: 'class', type: 'classification', weight: 1, auxiliary: false })]);
  });

  it('accepts the design example', () => {
    const spec = TrainSpecSchema.parse({
      model: 'pets',
      input: { type: 'image' },
      base: 'mobilenet_v2',
      mode: 'train',
      tasks: [
        { name: 'species', type: 'classification' },
        { name: 'breed', type: 'classification', weight: 0.5 },
        { name: 'face_box', type: 'regression', auxiliary: true },
      ],
      sharing: { method: 'soft', l2: 0.1 },
      training: { epochs: 30, batchSize: 32, learningRate: 0.001 },
    });
    expect(spec.sharing).toEqual({ method: 'soft', l2: 0.1, tower: [128] });
    expect(spec.tasks?.[1].weight).toBe(0.5);
  });

  it.each([
    ['an unknown field', { epochs: 3 }],
    ['no tasks', { tasks: [] }],
    ['duplicate task names', { tasks: [{ name: 'a' }, { name: 'a' }] }],
    ['an unknown sharing method', { sharing: { method: 'medium' } }],
    ['a path in the model name', { model: '../x' }],
    ['a malformed base', { base: 'model:' }],
    ['a negative learning rate', { training: { learningRate: -1 } }],
    ['an unknown task type', { tasks: [{ name: 'a', type: 'ranking' }] }],
  ])('rejects %s', (_why, spec) => expect(TrainSpecSchema.safeParse(spec).success).toBe(false));

  it('accepts model bases with and without a version', () => {
    expect(TrainSpecSchema.parse({ base: 'model:cats' }).base).toBe('model:cats');
    expect(TrainSpecSchema.parse({ base: 'model:cats@v20260101000000-abcdef' }).base).toBe('model:cats@v20260101000000-abcdef');
  });
});

describe('ManifestLineSchema', () => {
  it('accepts every label kind and missing tasks', () => {
    const line = ManifestLineSchema.parse({
      source: 'img/1.jpg',
      labels: { species: 'cat', tags: ['a', 'b'], age: 3, box: [0.1, 0.2, 0.3, 0.4], other: null },
    });
    expect(line.labels.box).toEqual([0.1, 0.2, 0.3, 0.4]);
    expect(ManifestLineSchema.parse({ source: 'x.png' }).labels).toEqual({});
  });
  it.each([
    ['an absolute source', { source: '/etc/passwd', labels: {} }],
    ['a source leaving the dataset', { source: '../other/x.jpg', labels: {} }],
    ['a non-finite number', { source: 'a.jpg', labels: { age: Number.NaN } }],
    ['an object label', { source: 'a.jpg', labels: { box: { x: 1 } } }],
  ])('rejects %s', (_why, line) => expect(ManifestLineSchema.safeParse(line).success).toBe(false));
});

describe('PredictRequestSchema', () => {
  it('accepts images or features and defaults topK to 3', () => {
    expect(PredictRequestSchema.parse({ instances: [{ image: 'aGk=' }] }).topK).toBe(3);
    expect(PredictRequestSchema.parse({ instances: [{ features: [1, 2] }], topK: 1 }).topK).toBe(1);
  });
  it.each([
    ['no instances', { instances: [] }],
    ['33 instances', { instances: Array.from({ length: 33 }, () => ({ image: 'aGk=' })) }],
    ['an instance with neither image nor features', { instances: [{ text: 'hi' }] }],
    ['an empty image', { instances: [{ image: '' }] }],
    ['topK of 0', { instances: [{ image: 'aGk=' }], topK: 0 }],
  ])('rejects %s', (_why, body) => expect(PredictRequestSchema.safeParse(body).success).toBe(false));
});

describe('PredictResponseSchema', () => {
  it('accepts classification and regression predictions', () => {
    const r = {
      model: 'm',
      version: 'v1',
      predictions: [{ species: { label: 'cat', score: 0.9, scores: [{ label: 'cat', score: 0.9 }] }, box: { value: [1, 2] } }],
    };
    expect(PredictResponseSchema.parse(r)).toEqual(r);
  });
  it('rejects a prediction with a missing score', () => {
    expect(PredictResponseSchema.safeParse({ model: 'm', version: 'v', predictions: [{ t: { label: 'x' } }] }).success).toBe(false);
  });
});

describe('UploadRequestSchema', () => {
  it('accepts relative paths', () => expect(UploadRequestSchema.parse({ files: [{ path: 'cat/1.jpg' }] }).files).toHaveLength(1));
  it.each(['/abs.jpg', 'a/../b.jpg', 'a//b.jpg'])('rejects %s', (p) => expect(UploadRequestSchema.safeParse({ files: [{ path: p }] }).success).toBe(false));
});

describe('JobStatusSchema', () => {
  const base = { jobId: 'train-x-1', model: 'x', dataset: 'x', datasetHash: 'ab', state: 'running', createdAt: now, updatedAt: now };
  it('accepts a running job and defaults progress and metrics', () => {
    expect(JobStatusSchema.parse(base)).toMatchObject({ progress: 0, metrics: {} });
  });
  it('rejects an unknown state and progress above 1', () => {
    expect(JobStatusSchema.safeParse({ ...base, state: 'paused' }).success).toBe(false);
    expect(JobStatusSchema.safeParse({ ...base, progress: 1.5 }).success).toBe(false);
  });
});

describe('ModelMetadataSchema and AliasSchema', () => {
  const meta = {
    model: 'm',
    version: 'v20260101000000-abcdef',
    createdAt: now,
    kind: 'train',
    input: { type: 'image', shape: [224, 224, 3] },
    base: { name: 'mobilenet_v2', embeddingSize: 1280 },
    tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels: ['a', 'b'] }],
    dataset: { name: 'd', hash: 'h' },
    spec: TrainSpecSchema.parse({}),
  };
  it('accepts complete metadata', () => expect(ModelMetadataSchema.parse(meta).metrics).toEqual({}));
  it('rejects metadata without tasks or with a 2-d image shape', () => {
    expect(ModelMetadataSchema.safeParse({ ...meta, tasks: [] }).success).toBe(false);
    expect(ModelMetadataSchema.safeParse({ ...meta, input: { type: 'image', shape: [224, 224] } }).success).toBe(false);
  });
  it('accepts an alias and rejects one without a version', () => {
    expect(AliasSchema.parse({ version: 'v1', previous: 'v0' }).previous).toBe('v0');
    expect(AliasSchema.safeParse({}).success).toBe(false);
  });
});

describe('DatasetReportSchema', () => {
  const report = {
    dataset: 'd',
    hash: 'abc',
    layout: 'folders',
    spec: TrainSpecSchema.parse({}),
    inputShape: [224, 224, 3],
    records: { total: 3, used: 2, skipped: 1 },
    splits: { train: 1, validation: 1, test: 0 },
    tasks: { class: { type: 'classification', labelled: 2, classes: { a: 1, b: 1 } } },
    skipped: [{ key: 'datasets/d/a/x.jpg', reason: 'corrupt image data' }],
    shards: [{ key: 'prepared/d/abc/shards/train-0.bin', split: 'train', count: 1 }],
    createdAt: now,
  };
  it('accepts a report', () => expect(DatasetReportSchema.parse(report).skipped).toHaveLength(1));
  it('rejects an unknown split and an unknown layout', () => {
    expect(DatasetReportSchema.safeParse({ ...report, shards: [{ key: 'k', split: 'dev', count: 1 }] }).success).toBe(false);
    expect(DatasetReportSchema.safeParse({ ...report, layout: 'zip' }).success).toBe(false);
  });
});

describe('BaseModelDescriptorSchema', () => {
  const d = {
    name: 'b',
    inputShape: [224, 224, 3],
    normalization: { scale: 1 / 255, offset: 0 },
    embedding: { layer: 'flatten_1', size: 1280 },
    modelKey: 'base-models/b/model.json',
    provenance: { source: 'npm' },
  };
  it('accepts a descriptor and defaults pooling', () => expect(BaseModelDescriptorSchema.parse(d).embedding.pooling).toBe('none'));
  it('rejects a descriptor without an embedding layer', () =>
    expect(BaseModelDescriptorSchema.safeParse({ ...d, embedding: { size: 3 } }).success).toBe(false));
});

describe('PlatformEnvSchema and TrainJobEnvSchema', () => {
  it('accepts the local and the cloud environment', () => {
    expect(PlatformEnvSchema.parse({ BUCKET_DIR: '/tmp/b' })).toMatchObject({ STORE_KIND: 'local', JOB_RUNNER: 'local', MODEL_CACHE_SIZE: 4 });
    expect(PlatformEnvSchema.parse({ STORE_KIND: 's3', BUCKET_NAME: 'bkt', JOB_RUNNER: 'batch', JOB_QUEUE: 'q', JOB_DEFINITION: 'd' }).STORE_KIND).toBe('s3');
  });
  it('rejects a local store without a folder and Batch without a queue', () => {
    expect(PlatformEnvSchema.safeParse({}).success).toBe(false);
    expect(PlatformEnvSchema.safeParse({ BUCKET_DIR: '/b', JOB_RUNNER: 'batch' }).success).toBe(false);
  });
  it('checks the job environment', () => {
    expect(TrainJobEnvSchema.safeParse({ TL_JOB_ID: 'j', TL_PREPARED_PREFIX: 'prepared/d/abc123' }).success).toBe(true);
    expect(TrainJobEnvSchema.safeParse({ TL_JOB_ID: 'j', TL_PREPARED_PREFIX: 'models/x' }).success).toBe(false);
  });
});
