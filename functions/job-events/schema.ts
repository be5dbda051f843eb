import { z } from 'zod';
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas';

/** One attempt of a Batch job, as the state-change event reports it. */
const BatchAttemptSchema = z.looseObject({
  container: z
    .looseObject({
      exitCode: z.number().int().nullish(),
      reason: z.string().nullish(),
      logStreamName: z.string().nullish(),
    })
    .optional(),
  startedAt: z.number().nullish(),
  stoppedAt: z.number().nullish(),
  statusReason: z.string().nullish(),
});

/** The `detail` of an EventBridge "Batch Job State Change" event (fields the platform reads). */
export const BatchJobStateDetailSchema = z.looseObject({
  jobArn: z.string().nullish(),
  jobName: z.string().min(1),
  jobId: z.string().min(1),
  jobQueue: z.string(),
  status: z.enum(['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED']),
  statusReason: z.string().nullish(),
  attempts: z.array(BatchAttemptSchema).default([]),
  container: z.looseObject({ exitCode: z.number().int().nullish(), reason: z.string().nullish() }).optional(),
});
export type BatchJobStateDetail = z.infer<typeof BatchJobStateDetailSchema>;

/** The whole event, built on Powertools' EventBridge envelope schema. */
export const BatchJobStateChangeEventSchema = EventBridgeSchema.extend({
  source: z.literal('aws.batch'),
  'detail-type': z.literal('Batch Job State Change'),
  detail: BatchJobStateDetailSchema,
});
export type BatchJobStateChangeEvent = z.infer<typeof BatchJobStateChangeEventSchema>;
