import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { PlatformFunction } from './platform-function.js';

export interface IngestProps {
  /** Layer with sharp and the base model files. */
  mlRuntime: lambda.ILayerVersion;
  /** Days prepared shards are kept. @default 30 */
  preparedRetentionDays?: number;
  /** Days a replaced or deleted object version is kept. @default 30 */
  noncurrentRetentionDays?: number;
  /** Delete the bucket and its objects with the stack. @default false */
  destroyData?: boolean;
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
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  public readonly preprocessFunction: PlatformFunction;

  constructor(scope: Construct, id: string, props: IngestProps) {
    super(scope, id);
    const timeout = props.preprocessTimeout ?? Duration.minutes(15);

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: props.destroyData ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      autoDeleteObjects: props.destroyData ?? false,
      // Presigned uploads from browsers; the signature is the authorisation.
      cors: [{ allowedMethods: [s3.HttpMethods.PUT], allowedOrigins: ['*'], allowedHeaders: ['content-type'], maxAge: 3600 }],
      lifecycleRules: [
        // Shards can be rebuilt from the dataset by uploading train.json again.
        { id: 'ExpirePreparedData', prefix: 'prepared/', expiration: Duration.days(props.preparedRetentionDays ?? 30) },
        // Cached embeddings are recomputed on a miss; the cache itself never evicts.
        { id: 'ExpireEmbeddingCache', prefix: 'cache/', expiration: Duration.days(props.preparedRetentionDays ?? 30) },
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

    this.preprocessFunction = new PlatformFunction(this, 'PreprocessFunction', {
      name: 'preprocess',
      description: 'train.json upload → prepared shards, dataset report, training job',
      timeout,
      // Image decoding is CPU-bound and Lambda's CPU grows with memory.
      memorySize: 3008,
      layers: [props.mlRuntime],
    });
    this.preprocessFunction.addEventSource(
      new SqsEventSource(this.queue, {
        // One dataset per invocation: each may take minutes.
        batchSize: 1,
        reportBatchItemFailures: true,
      }),
    );

    // Reads the upload, writes shards, reports and job status.
    this.bucket.grantRead(this.preprocessFunction, 'datasets/*');
    this.bucket.grantRead(this.preprocessFunction, 'base-models/*');
    this.bucket.grantPut(this.preprocessFunction, 'base-models/*');
    this.bucket.grantReadWrite(this.preprocessFunction, 'prepared/*');
    this.bucket.grantReadWrite(this.preprocessFunction, 'jobs/*');
    // Few-shot prototype models are published by this function, without a job, and
    // continual specs (`from`) read the model they extend.
    this.bucket.grantReadWrite(this.preprocessFunction, 'models/*');
    // Embeddings of prototype datasets are cached like a training job's.
    this.bucket.grantReadWrite(this.preprocessFunction, 'cache/*');
  }
}
