import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { grantPrefix } from '../s3-access.js';
import { PlatformFunction } from './platform-function.js';

export interface IngestProps {
  /** Layer with sharp and the base model files. */
  mlRuntime: lambda.ILayerVersion;
  /** Days prepared shards are kept. @default 30 */
  preparedRetentionDays?: number;
  /** Days a replaced or deleted object version is kept. @default 30 */
  noncurrentRetentionDays?: number;
  /** Days job records (status, checkpoints) under jobs/ are kept. @default 30 */
  jobsRetentionDays?: number;
  /** Delete the bucket and its objects with the stack. @default false */
  destroyData?: boolean;
  /** Reserved concurrency of the preprocess function. @default 4 */
  reservedConcurrency?: number;
  /** Most SQS batches handed to the preprocess function at once (2 or more). @default 2 */
  maxConcurrency?: number;
  /** Preprocess function timeout; the queue's visibility timeout is 6x this. @default 15 minutes */
  preprocessTimeout?: Duration;
  /** Deliveries of a message before it goes to the DLQ. @default 3 */
  maxReceiveCount?: number;
}

/**
 * The tenant bucket, and the path from an uploaded `train.json` to the
 * preprocess function: S3 notification → SQS (with DLQ and alarm) → Lambda.
 */
export class Ingest extends Construct {
  public readonly bucket: s3.Bucket;
  /** Server access logs of the tenant bucket: who read or wrote which object. */
  public readonly accessLogsBucket: s3.Bucket;
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  public readonly preprocessFunction: PlatformFunction;

  constructor(scope: Construct, id: string, props: IngestProps) {
    super(scope, id);
    const timeout = props.preprocessTimeout ?? Duration.minutes(15);

    const removalPolicy = props.destroyData ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      // Server access log delivery writes with SSE-S3 only.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      autoDeleteObjects: props.destroyData ?? false,
      lifecycleRules: [{ id: 'ExpireAccessLogs', expiration: Duration.days(365) }],
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This bucket holds the server access logs of the tenant bucket; logging the log bucket would only log the log delivery itself.',
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      autoDeleteObjects: props.destroyData ?? false,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'tenant-bucket/',
      // No CORS rule here: the dashboard adds one for its own origin (presigned uploads from the page).
      lifecycleRules: [
        // Shards can be rebuilt from the dataset by uploading train.json again.
        { id: 'ExpirePreparedData', prefix: 'prepared/', expiration: Duration.days(props.preparedRetentionDays ?? 30) },
        // Cached embeddings are recomputed on a miss; the cache itself never evicts.
        { id: 'ExpireEmbeddingCache', prefix: 'cache/', expiration: Duration.days(props.preparedRetentionDays ?? 30) },
        // Job records: status, progress and per-epoch checkpoints. A finished job
        // deletes its checkpoint; a failed or abandoned one would keep it forever.
        { id: 'ExpireJobRecords', prefix: 'jobs/', expiration: Duration.days(props.jobsRetentionDays ?? 30) },
        // Versioning protects against overwrites; old versions should not pile up forever.
        { id: 'ExpireNoncurrentVersions', noncurrentVersionExpiration: Duration.days(props.noncurrentRetentionDays ?? 30), expiredObjectDeleteMarker: true },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      // AWS's guidance for Lambda event sources: at least 6x the function timeout,
      // so a message is not redelivered while a retried invocation still holds it.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 3 },
    });
    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
      alarmDescription: 'A train.json notification failed preprocessing repeatedly and is in the dead-letter queue',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // Only the spec starts work: datasets upload many files, then train.json last.
    this.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.SqsDestination(this.queue), { prefix: 'datasets/', suffix: 'train.json' });
    // CDK's own singleton function that writes the bucket's notification configuration.
    for (const handler of Stack.of(this).node.children.filter((c) => c.node.id.startsWith('BucketNotificationsHandler'))) {
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "CDK's BucketNotificationsHandler (a custom resource run only at deploy time) has a role with the managed basic-execution policy, which CDK does not let callers replace; it writes logs and nothing else.",
      });
    }

    this.preprocessFunction = new PlatformFunction(this, 'PreprocessFunction', {
      name: 'preprocess',
      description: 'train.json upload → prepared shards, dataset report, training job',
      timeout,
      // Image decoding is CPU-bound and Lambda's CPU grows with memory.
      memorySize: 3008,
      layers: [props.mlRuntime],
      // Its share of the account's concurrency, kept for it and never exceeded.
      reservedConcurrentExecutions: props.reservedConcurrency ?? 4,
    });
    this.preprocessFunction.addEventSource(
      new SqsEventSource(this.queue, {
        // One dataset per invocation: each may take minutes.
        batchSize: 1,
        reportBatchItemFailures: true,
        // Below the reserved concurrency, so the poller never pushes the function into
        // throttling (throttled messages count as receives and drift to the DLQ).
        maxConcurrency: props.maxConcurrency ?? 2,
      }),
    );

    // Reads the upload, writes shards, reports and job status.
    const fn = this.preprocessFunction;
    grantPrefix(this.bucket, fn, 'datasets/', ['list', 'read']);
    grantPrefix(this.bucket, fn, 'base-models/', ['list', 'read', 'write']);
    grantPrefix(this.bucket, fn, 'prepared/', ['list', 'read', 'write', 'delete']);
    grantPrefix(this.bucket, fn, 'jobs/', ['list', 'read', 'write', 'delete']);
    // Few-shot prototype models are published by this function, without a job, and
    // continual specs (`from`) read the model they extend.
    grantPrefix(this.bucket, fn, 'models/', ['list', 'read', 'write', 'delete']);
    // Embeddings of prototype datasets are cached like a training job's.
    grantPrefix(this.bucket, fn, 'cache/', ['list', 'read', 'write', 'delete']);
  }
}
