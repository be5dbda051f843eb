import { CfnOutput, Duration, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { TenantConfig } from '../tenants.js';
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

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    super(scope, id, props);
    const { tenant } = props;
    Tags.of(this).add('tl:tenant', tenant.id);

    const mlRuntime = new MlRuntimeLayer(this, 'MlRuntime').layer;
    this.ingest = new Ingest(this, 'Ingest', {
      mlRuntime,
      preparedRetentionDays: tenant.preparedRetentionDays,
      destroyData: tenant.destroyData,
    });
    const bucket = this.ingest.bucket;
    this.training = new Training(this, 'Training', {
      bucket,
      capacity: tenant.capacity,
      maxvCpus: tenant.maxvCpus,
      jobTimeout: Duration.minutes(Math.round(tenant.jobTimeoutHours * 60)),
    });
    this.inference = new InferenceApi(this, 'Inference', { bucket, mlRuntime, throttle: tenant.throttle, quota: tenant.quota });

    // The preprocess function submits training jobs.
    const preprocess = this.ingest.preprocessFunction;
    preprocess.addEnvironment('STORE_KIND', 's3');
    preprocess.addEnvironment('BUCKET_NAME', bucket.bucketName);
    preprocess.addEnvironment('JOB_RUNNER', 'batch');
    preprocess.addEnvironment('JOB_QUEUE', this.training.jobQueue.jobQueueArn);
    preprocess.addEnvironment('JOB_DEFINITION', this.training.jobDefinition.jobDefinitionArn);
    this.training.grantSubmit(preprocess);

    new CfnOutput(this, 'ApiUrl', { value: this.inference.api.url, description: 'Base URL of the API (tl --endpoint)' });
    new CfnOutput(this, 'ApiKeyId', {
      value: this.inference.apiKey.keyId,
      description: 'aws apigateway get-api-key --include-value --api-key <id> prints the key (tl --api-key)',
    });
    new CfnOutput(this, 'BucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'JobQueueArn', { value: this.training.jobQueue.jobQueueArn });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.ingest.deadLetterQueue.queueUrl });
  }
}
