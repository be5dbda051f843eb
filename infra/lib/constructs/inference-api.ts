import { Duration } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { PlatformFunction } from './platform-function.js';

export interface InferenceApiProps {
  bucket: s3.IBucket;
  mlRuntime: lambda.ILayerVersion;
  /** Per API key. @default { rateLimit: 10, burstLimit: 20 } */
  throttle?: { rateLimit: number; burstLimit: number };
  /** Per API key. @default { limit: 10000, period: "DAY" } */
  quota?: { limit: number; period: 'DAY' | 'WEEK' | 'MONTH' };
}

/**
 * Largest base64 image accepted in one instance: 6 MiB of text. Lambda takes at
 * most 6 MB per synchronous request, below API Gateway's own 10 MB, so that is the
 * real limit of a whole body (the handler answers 413 above it, as the local server does).
 */
export const MAX_IMAGE_BASE64_CHARS = 6 * 1024 * 1024;
/** The same bound as MAX_INSTANCES in shared/schemas/predict.ts. */
export const MAX_INSTANCES = 32;

const errorTemplate = (code: string, message: string) => ({ 'application/json': `{"error":{"code":"${code}","message":${message}}}` });

/**
 * The tenant's HTTP API: predict and model information, and upload URLs. Every
 * method needs the tenant's API key; a usage plan throttles and caps it.
 */
export class InferenceApi extends Construct {
  public readonly api: apigw.RestApi;
  public readonly apiKey: apigw.IApiKey;
  public readonly usagePlan: apigw.UsagePlan;
  public readonly predictFunction: PlatformFunction;
  public readonly uploadsFunction: PlatformFunction;

  constructor(scope: Construct, id: string, props: InferenceApiProps) {
    super(scope, id);
    const throttle = props.throttle ?? { rateLimit: 10, burstLimit: 20 };
    const quota = props.quota ?? { limit: 10_000, period: 'DAY' as const };
    const storeEnv = { STORE_KIND: 's3', BUCKET_NAME: props.bucket.bucketName };

    this.predictFunction = new PlatformFunction(this, 'PredictFunction', {
      name: 'predict',
      description: 'Predictions and model information',
      // API Gateway waits at most 29 s for an integration.
      timeout: Duration.seconds(29),
      // Lambda's CPU share grows with memory; wasm inference is CPU-bound and models stay cached.
      memorySize: 3008,
      layers: [props.mlRuntime],
      environment: { ...storeEnv, MODEL_CACHE_SIZE: '4' },
    });
    props.bucket.grantRead(this.predictFunction, 'models/*');
    props.bucket.grantRead(this.predictFunction, 'base-models/*');
    props.bucket.grantRead(this.predictFunction, 'jobs/*');
    // POST /models/{model}/rollback moves an alias, and nothing else.
    props.bucket.grantPut(this.predictFunction, 'models/*/aliases/*');

    this.uploadsFunction = new PlatformFunction(this, 'UploadsFunction', {
      name: 'uploads',
      description: 'Presigned upload URLs under datasets/<dataset>/',
      environment: storeEnv,
    });
    // A presigned URL carries the signer's rights: only PUT, only under datasets/.
    props.bucket.grantPut(this.uploadsFunction, 'datasets/*');

    this.api = new apigw.RestApi(this, 'Api', {
      description: 'Transfer learning platform: predict, models, uploads',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      apiKeySourceType: apigw.ApiKeySourceType.HEADER,
      defaultMethodOptions: { apiKeyRequired: true },
      deployOptions: {
        stageName: 'v1',
        throttlingRateLimit: throttle.rateLimit,
        throttlingBurstLimit: throttle.burstLimit,
        metricsEnabled: true,
      },
      cloudWatchRole: false,
    });

    // Errors API Gateway answers itself, in the platform's error shape.
    const responses: { id: string; type: apigw.ResponseType; statusCode: string; code: string; message: string }[] = [
      { id: 'BadRequestBody', type: apigw.ResponseType.BAD_REQUEST_BODY, statusCode: '400', code: 'INVALID_REQUEST', message: '"$context.error.validationErrorString"' },
      { id: 'InvalidApiKey', type: apigw.ResponseType.INVALID_API_KEY, statusCode: '403', code: 'FORBIDDEN', message: '"missing or invalid x-api-key"' },
      { id: 'NoSuchRoute', type: apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, statusCode: '404', code: 'NOT_FOUND', message: '"no such route"' },
      { id: 'TooLarge', type: apigw.ResponseType.REQUEST_TOO_LARGE, statusCode: '413', code: 'PAYLOAD_TOO_LARGE', message: '"request body too large"' },
      { id: 'Throttled', type: apigw.ResponseType.THROTTLED, statusCode: '429', code: 'THROTTLED', message: '"too many requests"' },
      { id: 'QuotaExceeded', type: apigw.ResponseType.QUOTA_EXCEEDED, statusCode: '429', code: 'QUOTA_EXCEEDED', message: '"request quota exceeded"' },
    ];
    for (const r of responses) this.api.addGatewayResponse(r.id, { type: r.type, statusCode: r.statusCode, templates: errorTemplate(r.code, r.message) });

    const validator = new apigw.RequestValidator(this, 'BodyValidator', { restApi: this.api, validateRequestBody: true, validateRequestParameters: false });
    const predictModel = this.api.addModel('PredictRequestModel', {
      contentType: 'application/json',
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        type: apigw.JsonSchemaType.OBJECT,
        required: ['instances'],
        properties: {
          instances: {
            type: apigw.JsonSchemaType.ARRAY,
            minItems: 1,
            maxItems: MAX_INSTANCES,
            items: {
              type: apigw.JsonSchemaType.OBJECT,
              properties: {
                image: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: MAX_IMAGE_BASE64_CHARS },
                features: { type: apigw.JsonSchemaType.ARRAY, minItems: 1, maxItems: 100_000, items: { type: apigw.JsonSchemaType.NUMBER } },
              },
            },
          },
          tasks: { type: apigw.JsonSchemaType.ARRAY, items: { type: apigw.JsonSchemaType.STRING } },
          topK: { type: apigw.JsonSchemaType.INTEGER, minimum: 1, maximum: 100 },
          version: { type: apigw.JsonSchemaType.STRING, maxLength: 64 },
        },
      },
    });

    const predict = new apigw.LambdaIntegration(this.predictFunction);
    const models = this.api.root.addResource('models');
    models.addMethod('GET', predict);
    const model = models.addResource('{model}');
    model.addMethod('GET', predict);
    model.addResource('job').addMethod('GET', predict);
    model.addResource('rollback').addMethod('POST', predict);
    model.addResource('predict').addMethod('POST', predict, { requestValidator: validator, requestModels: { 'application/json': predictModel } });

    const uploads = this.api.root.addResource('datasets').addResource('{dataset}').addResource('uploads');
    uploads.addMethod('POST', new apigw.LambdaIntegration(this.uploadsFunction));

    this.apiKey = this.api.addApiKey('ApiKey', { description: 'Tenant API key (x-api-key header)' });
    this.usagePlan = this.api.addUsagePlan('UsagePlan', {
      description: 'Per-key throttle and quota of the tenant',
      throttle,
      quota: { limit: quota.limit, period: apigw.Period[quota.period] },
      apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
    });
    this.usagePlan.addApiKey(this.apiKey);
  }
}
