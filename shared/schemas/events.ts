import { z } from 'zod';
import { S3Schema } from '@aws-lambda-powertools/parser/schemas';

/** The message S3 sends to a queue when a notification is configured. It starts no work. */
export const S3TestEventSchema = z.object({ Service: z.literal('Amazon S3'), Event: z.literal('s3:TestEvent') });

export interface ObjectCreated {
  bucket: string;
  /** Decoded key: S3 event keys are URL-encoded with `+` for spaces. */
  key: string;
  size?: number;
  etag?: string;
  sequencer?: string;
}

/** Decodes an S3 event key once, here, so nothing downstream sees `%2F` or `+`. */
export function decodeS3Key(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

/**
 * Parses the body of one SQS message from an S3 notification into the objects it
 * reports. Returns an empty list for S3's test event; throws on anything else.
 */
export function parseS3NotificationBody(body: string): ObjectCreated[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new Error('message body is not JSON');
  }
  if (S3TestEventSchema.safeParse(json).success) return [];
  const event = S3Schema.parse(json);
  return event.Records.filter((r) => r.eventName.startsWith('ObjectCreated:')).map((r) => ({
    bucket: r.s3.bucket.name,
    key: decodeS3Key(r.s3.object.key),
    size: r.s3.object.size,
    etag: r.s3.object.eTag,
    sequencer: r.s3.object.sequencer,
  }));
}
