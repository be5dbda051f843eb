import { CfnOutput, Duration, Lazy, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { TenantConfig } from '../tenants.js';
import { Alerts } from '../constructs/alerts.js';
import { Dashboard } from '../constructs/dashboard.js';
import { InferenceApi } from '../constructs/inference-api.js';
import { Ingest } from '../constructs/ingest.js';
import { MlRuntimeLayer } from '../constructs/ml-runtime-layer.js';
import { Training } from '../constructs/training.js';

export interface TenantStackProps extends StackProps {
  tenant: TenantConfig;
}

/** Everything one tenant runs on: its bucket, ingest path, training queue and API. */
export class TenantStack extends Stack {
  public readonly ingest: Ingest;
  public readonly training: Training;
  public readonly inference: InferenceApi;
  public readonly alerts: Alerts;
  public readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    super(scope, id, props);
    const { tenant } = props;
    const longestJobDays = (tenant.jobTimeoutHours * 3) / 24;
    if (tenant.jobsRetentionDays <= longestJobDays)
      throw new Error(`jobsRetentionDays (${tenant.jobsRetentionDays}) must exceed the longest job, 3 attempts of jobTimeoutHours (${longestJobDays} days)`);
    Tags.of(this).add('tl:tenant', tenant.id);

    const mlRuntime = new MlRuntimeLayer(this, 'MlRuntime').layer;
    this.ingest = new Ingest(this, 'Ingest', {
      mlRuntime,
      preparedRetentionDays: tenant.preparedRetentionDays,
      jobsRetentionDays: tenant.jobsRetentionDays,
      destroyData: tenant.destroyData,
      reservedConcurrency: tenant.concurrency.preprocess,
      maxConcurrency: tenant.concurrency.preprocessMaxConcurrency,
    });
    const bucket = this.ingest.bucket;
    this.training = new Training(this, 'Training', {
      bucket,
      tenantId: tenant.id,
      capacity: tenant.capacity,
      maxvCpus: tenant.maxvCpus,
      jobTimeout: Duration.minutes(Math.round(tenant.jobTimeoutHours * 60)),
      runnableTimeout: Duration.minutes(tenant.runnableTimeoutMinutes),
      jobEventsConcurrency: tenant.concurrency.jobEvents,
    });
    // The API and the dashboard name each other (CORS origin; config.json and CSP), which
    // CloudFormation resolves; of the two constructs one must come first: the API, with
    // the dashboard's origin filled in at synthesis.
    const dashboardOrigin = Lazy.string({ produce: () => this.dashboard.origin });
    this.inference = new InferenceApi(this, 'Inference', {
      apiName: `tl-${tenant.id}`,
      bucket,
      mlRuntime,
      throttle: tenant.throttle,
      quota: tenant.quota,
      concurrency: tenant.concurrency,
      allowedOrigin: dashboardOrigin,
    });
    this.dashboard = new Dashboard(this, 'Dashboard', {
      api: this.inference.api,
      uploadBucket: bucket,
      accessLogsBucket: this.ingest.accessLogsBucket,
      destroyData: tenant.destroyData,
    });
    // Every log line and metric says which tenant it is about (shared/observability.ts).
    for (const fn of [
      this.ingest.preprocessFunction,
      this.inference.predictFunction,
      this.inference.uploadsFunction,
      this.inference.authorizerFunction,
      this.training.jobEventsFunction,
    ])
      fn.addEnvironment('TL_TENANT', tenant.id);
    this.alerts = new Alerts(this, 'Alerts', {
      email: tenant.alarmEmail,
      existingAlarms: [this.ingest.deadLetterAlarm],
      deadLetterQueues: [
        {
          id: 'JobEventsDeadLetter',
          queue: this.training.jobEventsDeadLetterQueue,
          description: 'A Batch job event was not recorded in its status.json (job-events failed or was unreachable)',
        },
      ],
      jobFailedRule: this.training.jobFailedRule,
      functions: [
        { id: 'Preprocess', fn: this.ingest.preprocessFunction },
        { id: 'Predict', fn: this.inference.predictFunction },
        { id: 'Uploads', fn: this.inference.uploadsFunction },
        { id: 'AdminAuthorizer', fn: this.inference.authorizerFunction },
        { id: 'JobEvents', fn: this.training.jobEventsFunction },
      ],
      api: this.inference.api,
      latencyP99Ms: tenant.apiLatencyP99AlarmMs,
    });

    // The preprocess function submits training jobs.
    const preprocess = this.ingest.preprocessFunction;
    preprocess.addEnvironment('STORE_KIND', 's3');
    preprocess.addEnvironment('BUCKET_NAME', bucket.bucketName);
    preprocess.addEnvironment('JOB_RUNNER', 'batch');
    preprocess.addEnvironment('JOB_QUEUE', this.training.jobQueue.jobQueueArn);
    preprocess.addEnvironment('JOB_DEFINITION', this.training.jobDefinition.jobDefinitionArn);
    this.training.grantSubmit(preprocess);

    new CfnOutput(this, 'DashboardUrl', {
      value: `${this.dashboard.origin}/`,
      description: 'The web dashboard: sign in with the API key (admin key to promote, roll back, upload)',
    });
    new CfnOutput(this, 'ApiUrl', { value: this.inference.api.url, description: 'Base URL of the API (tl --endpoint)' });
    new CfnOutput(this, 'ApiKeyId', {
      value: this.inference.apiKey.keyId,
      description: 'aws apigateway get-api-key --include-value --api-key <id> prints the key (tl --api-key)',
    });
    new CfnOutput(this, 'AdminApiKeyId', {
      value: this.inference.adminApiKey.keyId,
      description: 'The admin key (also rollback, promote, uploads: tl upload --api-key): aws apigateway get-api-key --include-value --api-key <id>',
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alerts.topic.topicArn, description: 'SNS topic of the tenant alarms' });
    new CfnOutput(this, 'BucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'JobQueueArn', { value: this.training.jobQueue.jobQueueArn });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.ingest.deadLetterQueue.queueUrl });
  }
}
