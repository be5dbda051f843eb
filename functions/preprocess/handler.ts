import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { parseS3NotificationBody } from '../../shared/schemas/events.js';
import { createDeps } from '../../shared/wiring.js';
import { preprocessDataset, type PreprocessDeps, type PreprocessResult } from './core.js';

/**
 * SQS entry point of preprocessing: each message body is an S3 notification
 * (or S3's test event, which starts nothing). Records are processed one after
 * another, since each may decode a whole dataset; a record that throws (a
 * transient failure) is reported in `batchItemFailures` so SQS redelivers only
 * it, and after the queue's maxReceiveCount it lands in the DLQ.
 */
export type PreprocessHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

export function createHandler(deps: PreprocessDeps): PreprocessHandler {
  const handleRecord = async (record: SQSRecord): Promise<PreprocessResult[]> => {
    const results: PreprocessResult[] = [];
    for (const object of parseS3NotificationBody(record.body)) {
      if (!object.key.endsWith('/train.json')) continue;
      results.push(await preprocessDataset(object, deps));
    }
    return results;
  };
  return async (event, context) => {
    // A processor holds the state of one batch, so each invocation gets its own:
    // the embedded platform may call this handler for two batches at once.
    const processor = new BatchProcessor(EventType.SQS);
    return processPartialResponse(event, handleRecord, processor, { context, processInParallel: false });
  };
}

let handlerPromise: Promise<PreprocessHandler> | undefined;

/** Lambda entry: builds its adapters from the environment once per cold start. */
export const handler: PreprocessHandler = async (event, context) => {
  handlerPromise ??= createDeps().then((deps) => createHandler({ store: deps.store, jobs: deps.jobs, log: console }));
  let ready: PreprocessHandler;
  try {
    ready = await handlerPromise;
  } catch (err) {
    // Let the next invocation try again rather than cache a failed start.
    handlerPromise = undefined;
    throw err;
  }
  return ready(event, context);
};
