import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.js';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.js';
import { describeObjectStoreContract } from './object-store.contract.js';
import { startLocalS3, type LocalS3 } from './s3rver-harness.js';

describeObjectStoreContract('FsObjectStore (temporary folder)', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'fs-store-'));
  return {
    store: new FsObjectStore({ root, presign: { baseUrl: 'http://127.0.0.1:8080', secret: 'contract-test-secret-0123', bucket: 'local' } }),
    // Its signed URLs are served by the local HTTP server, which is not started here.
    servesPresignedUploads: false,
    dispose: () => rm(root, { recursive: true, force: true }),
  };
});

describeObjectStoreContract('S3ObjectStore (s3rver on 127.0.0.1)', async () => {
  const s3 = await startLocalS3();
  return {
    // s3rver 3.7 ignores If-None-Match on PUT (see below), so the adapter runs in
    // its HeadObject-then-PutObject mode here; on AWS it sends If-None-Match: *.
    store: new S3ObjectStore({ bucket: s3.bucket, client: s3.client, conditionalWrites: 'head-then-put', multipartThreshold: 5 * 1024 * 1024 }),
    servesPresignedUploads: true,
    skips: {
      'putIfAbsent-atomic': 's3rver has no conditional PUT; HeadObject-then-PutObject is not atomic (AWS S3 mode is covered by the mocked-client tests)',
    },
    dispose: () => s3.stop(),
  };
});

describe('s3rver', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await startLocalS3();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('ignores If-None-Match on PUT, which is why the contract runs it in head-then-put mode', async () => {
    // If this starts failing, s3rver learned conditional writes: run the contract in native mode.
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'k', Body: 'first', IfNoneMatch: '*' }));

    await expect(s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'k', Body: 'second', IfNoneMatch: '*' }))).resolves.toBeDefined();
  });

  it('takes a multipart upload through the adapter', async () => {
    const store = new S3ObjectStore({ bucket: s3.bucket, client: s3.client, multipartThreshold: 1024 });
    const body = Buffer.alloc(6 * 1024 * 1024 + 3, 9);

    await store.put('big/object.bin', body);

    expect(Buffer.compare(await store.get('big/object.bin'), body)).toBe(0);
  });
});
