import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { S3ObjectStore } from '../../../../shared/adapters/aws/s3-object-store.js';
import { NotFoundError } from '../../../../shared/ports/object-store.js';
import { createS3ObjectStore } from '../../../../shared/adapters/aws/index.js';
import { PlatformEnvSchema } from '../../../../shared/schemas/env.js';

const BUCKET = 'tenant-bucket';

function body(text: string) {
  // The part of the SDK's stream mixin the adapter uses.
  return { transformToByteArray: async () => new Uint8Array(Buffer.from(text)) } as never;
}

function s3Error(name: string, status: number): S3ServiceException {
  return new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status }, message: name });
}

describe('S3ObjectStore', () => {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' } });
  const s3 = mockClient(client);
  let store: S3ObjectStore;

  beforeEach(() => {
    s3.reset();
    store = new S3ObjectStore({ bucket: BUCKET, client });
  });

  it('gets an object from the tenant bucket with the key as given', async () => {
    // Prepare: a decoded key with a space and a plus, as the event parser hands it over
    s3.on(GetObjectCommand, { Bucket: BUCKET, Key: 'datasets/my pets/a+b.json' }).resolves({ Body: body('{"ok":1}') });

    // Act
    const bytes = await store.get('datasets/my pets/a+b.json');

    // Assess: no second encoding by the adapter
    expect(bytes.toString()).toBe('{"ok":1}');
    expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: BUCKET, Key: 'datasets/my pets/a+b.json' });
  });

  it('maps NoSuchKey to NotFoundError and keeps other errors', async () => {
    s3.on(GetObjectCommand, { Key: 'missing' }).rejects(new NoSuchKey({ message: 'no key', $metadata: { httpStatusCode: 404 } }));
    s3.on(GetObjectCommand, { Key: 'denied' }).rejects(s3Error('AccessDenied', 403));

    await expect(store.get('missing')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.get('denied')).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('does not mistake a missing bucket for a missing object', async () => {
    s3.on(GetObjectCommand).rejects(s3Error('NoSuchBucket', 404));

    await expect(store.get('k')).rejects.toMatchObject({ name: 'NoSuchBucket' });
  });

  it('lists every page with continuation tokens and returns keys sorted', async () => {
    // Prepare: two pages, the second out of order
    s3.on(ListObjectsV2Command, { Prefix: 'models/', ContinuationToken: undefined }).resolves({
      IsTruncated: true,
      NextContinuationToken: 'page-2',
      Contents: [
        { Key: 'models/b/1', Size: 3, ETag: '"e1"' },
        { Key: 'models/c/1', Size: 4 },
      ],
    });
    s3.on(ListObjectsV2Command, { Prefix: 'models/', ContinuationToken: 'page-2' }).resolves({
      IsTruncated: false,
      Contents: [{ Key: 'models/a/1', Size: 5 }],
    });

    // Act
    const listed = await store.list('models/');

    // Assess
    expect(listed.map((o) => o.key)).toEqual(['models/a/1', 'models/b/1', 'models/c/1']);
    expect(listed[1]).toMatchObject({ size: 3, etag: 'e1' });
    expect(s3).toHaveReceivedCommandTimes(ListObjectsV2Command, 2);
    expect(s3).toHaveReceivedNthCommandWith(ListObjectsV2Command, 2, { Bucket: BUCKET, Prefix: 'models/', ContinuationToken: 'page-2' });
  });

  it('puts small bodies with one PutObject and its content type', async () => {
    s3.on(PutObjectCommand).resolves({});

    await store.put('jobs/j/status.json', '{}', { contentType: 'application/json' });

    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, { Bucket: BUCKET, Key: 'jobs/j/status.json', ContentType: 'application/json' });
    expect(s3).not.toHaveReceivedCommand(CreateMultipartUploadCommand);
  });

  it('puts bodies above the threshold as a multipart upload', async () => {
    // Prepare: 11 MiB over a 1 MiB threshold: lib-storage cuts 5 MiB parts
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
    s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({ ETag: `"p${input.PartNumber}"` }));
    s3.on(CompleteMultipartUploadCommand).resolves({ Location: 'x' });
    store = new S3ObjectStore({ bucket: BUCKET, client, multipartThreshold: 1024 * 1024 });

    // Act
    await store.put('prepared/d/h/shard-0.bin', Buffer.alloc(11 * 1024 * 1024, 7));

    // Assess
    expect(s3).toHaveReceivedCommandWith(CreateMultipartUploadCommand, { Bucket: BUCKET, Key: 'prepared/d/h/shard-0.bin' });
    expect(s3).toHaveReceivedCommandTimes(UploadPartCommand, 3);
    expect(s3).toHaveReceivedCommandWith(CompleteMultipartUploadCommand, { UploadId: 'up-1' });
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });

  describe('putIfAbsent', () => {
    it('sends If-None-Match: * and reports creation', async () => {
      s3.on(PutObjectCommand).resolves({});

      expect(await store.putIfAbsent('jobs/j/status.json', '{}')).toBe(true);
      expect(s3).toHaveReceivedCommandWith(PutObjectCommand, { Key: 'jobs/j/status.json', IfNoneMatch: '*' });
    });

    it('returns false on 412 PreconditionFailed', async () => {
      s3.on(PutObjectCommand).rejects(s3Error('PreconditionFailed', 412));

      expect(await store.putIfAbsent('jobs/j/status.json', '{}')).toBe(false);
    });

    it('retries a 409 ConditionalRequestConflict and then honours the winner', async () => {
      s3.on(PutObjectCommand).rejectsOnce(s3Error('ConditionalRequestConflict', 409)).rejectsOnce(s3Error('PreconditionFailed', 412));

      expect(await store.putIfAbsent('k', 'v')).toBe(false);
      expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 2);
    });

    it('gives up after the configured attempts of 409', async () => {
      s3.on(PutObjectCommand).rejects(s3Error('ConditionalRequestConflict', 409));
      store = new S3ObjectStore({ bucket: BUCKET, client, conflictAttempts: 2 });

      await expect(store.putIfAbsent('k', 'v')).rejects.toMatchObject({ name: 'ConditionalRequestConflict' });
      expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 2);
    });

    it('in head-then-put mode, checks with HeadObject and skips an existing key', async () => {
      s3.on(HeadObjectCommand, { Key: 'exists' }).resolves({});
      s3.on(HeadObjectCommand, { Key: 'new' }).rejects(s3Error('NotFound', 404));
      s3.on(PutObjectCommand).resolves({});
      store = new S3ObjectStore({ bucket: BUCKET, client, conditionalWrites: 'head-then-put' });

      expect(await store.putIfAbsent('exists', 'v')).toBe(false);
      expect(await store.putIfAbsent('new', 'v')).toBe(true);
      expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 1);
      expect(s3).not.toHaveReceivedCommandWith(PutObjectCommand, { IfNoneMatch: '*' });
    });
  });

  it('deletes by key', async () => {
    s3.on(DeleteObjectCommand).resolves({});

    await store.delete('datasets/d/x.jpg');

    expect(s3).toHaveReceivedCommandExactlyOnceWith(DeleteObjectCommand, { Bucket: BUCKET, Key: 'datasets/d/x.jpg' });
  });

  it('presigns a PUT for the key that expires and binds the content type', async () => {
    const signed = await store.presignPut('datasets/d/cat 1.jpg', { expiresIn: 300, contentType: 'image/jpeg' });

    const url = new URL(signed.url);
    expect(url.hostname).toBe(`${BUCKET}.s3.us-east-1.amazonaws.com`);
    expect(decodeURIComponent(url.pathname)).toBe('/datasets/d/cat 1.jpg');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(url.searchParams.get('X-Amz-SignedHeaders')).toContain('content-type');
    expect(signed.headers).toEqual({ 'content-type': 'image/jpeg' });
  });
});

describe('createS3ObjectStore', () => {
  it('uses BUCKET_NAME from the validated environment', () => {
    const env = PlatformEnvSchema.parse({ STORE_KIND: 's3', BUCKET_NAME: 'acme-bucket' });

    expect(createS3ObjectStore(env).bucket).toBe('acme-bucket');
  });

  it('presigns PUT URLs that accept any body: no checksum of the empty body they were signed with', async () => {
    // Prepare: the Lambda environment the default client reads.
    vi.stubEnv('AWS_REGION', 'eu-west-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDTEST');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'secret');
    const store = createS3ObjectStore(PlatformEnvSchema.parse({ STORE_KIND: 's3', BUCKET_NAME: 'acme-bucket' }));

    try {
      // Act
      const url = new URL((await store.presignPut('datasets/d/cat.jpg', { expiresIn: 300, contentType: 'image/jpeg' })).url);

      // Assess: the SDK's default (since 3.729) would add x-amz-checksum-crc32=AAAAAA== and S3 would refuse the upload.
      expect(url.hostname).toBe('acme-bucket.s3.eu-west-1.amazonaws.com');
      expect([...url.searchParams.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
