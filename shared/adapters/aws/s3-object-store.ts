import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NotFoundError, type ObjectInfo, type ObjectStore, type PresignedPut, type PutOptions } from '../../ports/object-store.js';

/** 16 MiB: below it one PutObject is cheapest; above it a multipart upload retries parts, not the whole body. */
const DEFAULT_MULTIPART_THRESHOLD = 16 * 1024 * 1024;

/**
 * Checksums only where S3 requires them, as SDK v3 did before 3.729. Since then it
 * adds a CRC32 to every PutObject by default, and a presigned PUT URL carries the
 * CRC32 of the empty body it was signed with (`x-amz-checksum-crc32=AAAAAA==`): S3
 * then refuses every real upload to it (BadDigest), from the dashboard and from `tl
 * upload` alike. TLS and SigV4 protect the bytes in transit either way.
 */
export const S3_CLIENT_DEFAULTS = { requestChecksumCalculation: 'WHEN_REQUIRED' } as const;

export interface S3ObjectStoreOptions {
  bucket: string;
  /**
   * Pass one made with `S3_CLIENT_DEFAULTS` where `presignPut` URLs go to browsers or `tl`.
   * @default new S3Client(S3_CLIENT_DEFAULTS) (region and credentials from the Lambda or Batch environment)
   */
  client?: S3Client;
  /** Bodies larger than this many bytes go through `@aws-sdk/lib-storage` multipart upload. @default 16 MiB */
  multipartThreshold?: number;
  /**
   * How `putIfAbsent` is made exclusive.
   * - `native`: one PutObject with `If-None-Match: *` (S3 has supported it since 2024); atomic.
   * - `head-then-put`: HeadObject, then PutObject. Not atomic (two writers can both
   *   win); only for S3-compatible servers that ignore `If-None-Match` on PUT, such
   *   as the s3rver used in the contract tests.
   * @default "native"
   */
  conditionalWrites?: 'native' | 'head-then-put';
  /** Attempts of a conditional PUT answered with 409 ConditionalRequestConflict. @default 3 */
  conflictAttempts?: number;
}

interface AwsError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function errorName(err: unknown): string | undefined {
  const e = err as AwsError;
  return e?.name ?? e?.Code;
}

function httpStatus(err: unknown): number | undefined {
  return (err as AwsError)?.$metadata?.httpStatusCode;
}

function byteLength(body: Buffer | Uint8Array | string): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The tenant bucket on Amazon S3. Keys are passed to the SDK as they are: the
 * event parser already decoded them once, and the SDK does the URL encoding of
 * the request path itself.
 */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly multipartThreshold: number;
  private readonly conditionalWrites: 'native' | 'head-then-put';
  private readonly conflictAttempts: number;

  constructor(options: S3ObjectStoreOptions) {
    this.bucket = options.bucket;
    this.client = options.client ?? new S3Client(S3_CLIENT_DEFAULTS);
    this.multipartThreshold = options.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
    this.conditionalWrites = options.conditionalWrites ?? 'native';
    this.conflictAttempts = options.conflictAttempts ?? 3;
  }

  async get(key: string): Promise<Buffer> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new NotFoundError(key);
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      // Only NoSuchKey: a 404 NoSuchBucket is a deployment error, not a missing object.
      if (errorName(err) === 'NoSuchKey') throw new NotFoundError(key);
      throw err;
    }
  }

  private putInput(key: string, body: Buffer | Uint8Array | string, options?: PutOptions): PutObjectCommandInput {
    return { Bucket: this.bucket, Key: key, Body: body, ContentType: options?.contentType };
  }

  /** PutObject input with an explicit length: the SDK cannot infer it for an empty string and would warn about a stream of unknown length. */
  private singlePutInput(key: string, body: Buffer | Uint8Array | string, options?: PutOptions): PutObjectCommandInput {
    return { ...this.putInput(key, body, options), ContentLength: byteLength(body) };
  }

  async put(key: string, body: Buffer | Uint8Array | string, options?: PutOptions): Promise<void> {
    const input = this.putInput(key, body, options);
    if (byteLength(body) <= this.multipartThreshold) {
      await this.client.send(new PutObjectCommand(this.singlePutInput(key, body, options)));
      return;
    }
    // S3 makes a multipart object visible only on CompleteMultipartUpload, so
    // readers still see the old or the new bytes, never a part of them.
    const upload = new Upload({ client: this.client, params: input, queueSize: 4, leavePartsOnError: false });
    await upload.done();
  }

  /**
   * Single PutObject (up to 5 GiB): this primitive guards small markers such as
   * a job's status, never large bodies.
   */
  async putIfAbsent(key: string, body: Buffer | Uint8Array | string, options?: PutOptions): Promise<boolean> {
    if (this.conditionalWrites === 'head-then-put') {
      if (await this.exists(key)) return false;
      await this.client.send(new PutObjectCommand(this.singlePutInput(key, body, options)));
      return true;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(new PutObjectCommand({ ...this.singlePutInput(key, body, options), IfNoneMatch: '*' }));
        return true;
      } catch (err) {
        if (errorName(err) === 'PreconditionFailed' || httpStatus(err) === 412) return false;
        // 409: another conditional write on this key is in flight. S3 asks callers
        // to retry; the retry then meets the winner's object (412) or succeeds.
        const conflict = errorName(err) === 'ConditionalRequestConflict' || httpStatus(err) === 409;
        if (!conflict || attempt >= this.conflictAttempts) throw err;
        await sleep(50 * 2 ** attempt);
      }
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (errorName(err) === 'NotFound' || errorName(err) === 'NoSuchKey' || httpStatus(err) === 404) return false;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        out.push({ key: o.Key, size: o.Size ?? 0, etag: o.ETag?.replace(/"/g, ''), lastModified: o.LastModified });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    // S3 sorts by UTF-8 bytes; the port promises the same order as the local
    // store (JavaScript string order), which differs only beyond the BMP.
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    // S3 answers 204 for a missing key too, which is what the port asks for.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async presignPut(key: string, options: { expiresIn: number; contentType?: string }): Promise<PresignedPut> {
    const command = new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentType: options.contentType });
    // Signing Content-Type makes S3 refuse an upload that claims another type,
    // so the bucket holds what the API agreed to; the client must send it unchanged.
    const url = await getSignedUrl(this.client, command, {
      expiresIn: options.expiresIn,
      signableHeaders: options.contentType ? new Set(['content-type']) : undefined,
    });
    return { url, headers: options.contentType ? { 'content-type': options.contentType } : {} };
  }
}
