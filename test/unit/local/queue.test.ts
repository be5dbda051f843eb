import { describe, expect, it } from 'vitest';
import type { SQSEvent } from 'aws-lambda';
import { InProcessQueue, s3EventBody } from '../../../shared/local/queue.js';
import { parseS3NotificationBody } from '../../../shared/schemas/events.js';

describe('InProcessQueue', () => {
  it('delivers messages as SQS events whose bodies parse as S3 notifications', async () => {
    // Prepare
    const seen: SQSEvent[] = [];
    const queue = new InProcessQueue({ consumer: async (e) => void seen.push(e) });
    // Act
    await queue.send(s3EventBody('tl-default', 'datasets/my set/train.json', 12, 'abc'));
    await queue.whenIdle();
    // Assess
    expect(seen).toHaveLength(1);
    const record = seen[0].Records[0];
    expect(record.eventSource).toBe('aws:sqs');
    expect(record.attributes.ApproximateReceiveCount).toBe('1');
    expect(parseS3NotificationBody(record.body)).toEqual([
      expect.objectContaining({ bucket: 'tl-default', key: 'datasets/my set/train.json', size: 12, etag: 'abc' }),
    ]);
  });

  it('retries only the records reported failed, then dead-letters them', async () => {
    // Prepare
    const deliveries = new Map<string, number>();
    const queue = new InProcessQueue({
      retryDelayMs: 5,
      maxReceiveCount: 3,
      consumer: async (e) => {
        for (const r of e.Records) deliveries.set(r.body, (deliveries.get(r.body) ?? 0) + 1);
        return { batchItemFailures: e.Records.filter((r) => r.body === 'bad').map((r) => ({ itemIdentifier: r.messageId })) };
      },
    });
    // Act
    await queue.send('good');
    await queue.send('bad');
    await queue.whenIdle();
    // Assess
    expect(deliveries.get('good')).toBe(1);
    expect(deliveries.get('bad')).toBe(3);
    expect(queue.deadLettered.map((d) => d.record.body)).toEqual(['bad']);
  });

  it('retries a whole batch when the consumer throws', async () => {
    // Prepare
    let calls = 0;
    const queue = new InProcessQueue({
      retryDelayMs: 5,
      consumer: async () => {
        calls++;
        if (calls === 1) throw new Error('transient');
      },
    });
    // Act
    await queue.send('a');
    await queue.whenIdle();
    // Assess
    expect(calls).toBe(2);
    expect(queue.deadLettered).toHaveLength(0);
  });
});
