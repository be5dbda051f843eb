import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { parseS3NotificationBody } from '../../shared/schemas/events.js';
import { retryingLazy } from '../../shared/lazy.js';
import { createObservability } from '../../shared/observability.js';
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

export function createHandler(deps: PreprocessDeps, onResult?: (result: PreprocessResult) => void): PreprocessHandler {
  const handleRecord = async (record: SQSRecord): Promise<PreprocessResult[]> => {
    const results: PreprocessResult[] = [];
    for (const object of parseS3NotificationBody(record.body)) {
      if (!object.key.endsWith('/train.json')) continue;
      const result = await preprocessDataset(object, deps);
      onResult?.(result);
      results.push(result);
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

/**
 * On Lambda the core logs through Powertools' Logger (JSON lines with the tenant),
 * and each dataset counts in `Datasets` by outcome and, when refused, in
 * `PreprocessFailures` by error code.
 */
const ready = retryingLazy(async () => {
  const deps = await createDeps();
  const { logger, metrics } = createObservability('preprocess');
  // Logger takes the extra fields as an optional rest argument; PreprocessLog passes one or none.
  const log = {
    info: (m: string, x?: Record<string, unknown>) => logger.info(m, x ?? {}),
    warn: (m: string, x?: Record<string, unknown>) => logger.warn(m, x ?? {}),
    error: (m: string, x?: Record<string, unknown>) => logger.error(m, x ?? {}),
  };
  return createHandler({ store: deps.store, jobs: deps.jobs, log }, (result) => {
    metrics.singleMetric().addDimensions({ outcome: result.outcome }).addMetric('Datasets', MetricUnit.Count, 1);
    if (result.outcome === 'failed') metrics.singleMetric().addDimensions({ code: result.error.code }).addMetric('PreprocessFailures', MetricUnit.Count, 1);
  });
});

/** Lambda entry: builds its adapters from the environment once per cold start (again after a failed start). */
export const handler: PreprocessHandler = async (event, context) => (await ready())(event, context);
