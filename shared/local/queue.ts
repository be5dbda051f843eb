import { randomUUID, createHash } from 'node:crypto';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { EventQueue } from '../ports/events.js';

export interface InProcessQueueOptions {
  /** Receives batches exactly as Lambda's SQS event source would deliver them. */
  consumer: (event: SQSEvent) => Promise<SQSBatchResponse | void>;
  /** Messages per batch. @default 10 */
  batchSize?: number;
  /** Deliveries before a message moves to the dead-letter list. @default 5 */
  maxReceiveCount?: number;
  /** Delay before a failed message is delivered again; doubles with each delivery. @default 2000 */
  retryDelayMs?: number;
  /** Called with each message that exhausted its deliveries. */
  onDeadLetter?: (record: SQSRecord, reason: string) => void;
  queueArn?: string;
}

interface Message {
  id: string;
  body: string;
  receiveCount: number;
  sentAt: number;
}

/**
 * The embedded default's SQS: an in-process queue that hands the consumer the
 * same SQS event shape, honours partial batch failures, retries with a delay,
 * and dead-letters a message after `maxReceiveCount` deliveries.
 */
export class InProcessQueue implements EventQueue {
  private readonly ready: Message[] = [];
  private readonly deadLetters: Array<{ record: SQSRecord; reason: string }> = [];
  private inFlight = 0;
  private timers = new Set<NodeJS.Timeout>();
  private draining: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(private readonly options: InProcessQueueOptions) {}

  async send(body: string): Promise<void> {
    if (this.stopped) throw new Error('queue stopped');
    this.ready.push({ id: randomUUID(), body, receiveCount: 0, sentAt: Date.now() });
    this.kick();
  }

  get deadLettered(): ReadonlyArray<{ record: SQSRecord; reason: string }> {
    return this.deadLetters;
  }

  /** Resolves when no message is waiting, in flight, or scheduled for retry. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  get idle(): boolean {
    return this.isIdle();
  }

  private isIdle() {
    return this.ready.length === 0 && this.inFlight === 0 && this.timers.size === 0;
  }

  private kick(): void {
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      if (this.ready.length > 0 && !this.stopped) this.kick();
      else if (this.isIdle()) {
        for (const w of this.idleWaiters.splice(0)) w();
      }
    });
  }

  private toRecord(m: Message): SQSRecord {
    const arn = this.options.queueArn ?? 'arn:aws:sqs:local:000000000000:ingest';
    return {
      messageId: m.id,
      receiptHandle: `${m.id}#${m.receiveCount}`,
      body: m.body,
      attributes: {
        ApproximateReceiveCount: String(m.receiveCount),
        SentTimestamp: String(m.sentAt),
        SenderId: 'local',
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(m.body).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: arn,
      awsRegion: 'local',
    };
  }

  private async drain(): Promise<void> {
    while (this.ready.length > 0 && !this.stopped) {
      const batch = this.ready.splice(0, this.options.batchSize ?? 10);
      for (const m of batch) m.receiveCount++;
      this.inFlight += batch.length;
      const records = batch.map((m) => this.toRecord(m));
      let failed: Set<string>;
      let reason = 'the consumer reported it failed';
      try {
        const res = await this.options.consumer({ Records: records });
        failed = new Set((res?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      } catch (err) {
        // A thrown handler fails the whole batch, as with Lambda.
        failed = new Set(batch.map((m) => m.id));
        reason = (err as Error).message;
      }
      this.inFlight -= batch.length;
      for (const [i, m] of batch.entries()) {
        if (!failed.has(m.id)) continue;
        if (m.receiveCount >= (this.options.maxReceiveCount ?? 5)) {
          this.deadLetters.push({ record: records[i], reason });
          this.options.onDeadLetter?.(records[i], reason);
          continue;
        }
        const t = setTimeout(
          () => {
            this.timers.delete(t);
            if (this.stopped) return;
            this.ready.push(m);
            this.kick();
          },
          (this.options.retryDelayMs ?? 2000) * 2 ** (m.receiveCount - 1),
        );
        this.timers.add(t);
      }
    }
  }
}

/** The S3 notification body that S3 would put on the queue for one new object. */
export function s3EventBody(bucket: string, key: string, size: number, etag?: string): string {
  const encodedKey = encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+');
  return JSON.stringify({
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: 'local',
        eventTime: new Date().toISOString(),
        eventName: 'ObjectCreated:Put',
        userIdentity: { principalId: 'local' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: { 'x-amz-request-id': randomUUID(), 'x-amz-id-2': randomUUID() },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'train-json',
          bucket: { name: bucket, ownerIdentity: { principalId: 'local' }, arn: `arn:aws:s3:::${bucket}` },
          object: { key: encodedKey, size, eTag: etag ?? '', sequencer: Date.now().toString(16).toUpperCase() },
        },
      },
    ],
  });
}
