import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { grantPrefix } from '../s3-access.js';
import { PlatformFunction } from './platform-function.js';
import type { ErrorCode } from '../../../shared/schemas/errors.js';

export interface InferenceApiProps {
  /** Name of the REST API in the console: one per tenant, e.g. `tl-acme`. */
  apiName: string;
  bucket: s3.IBucket;
  mlRuntime: lambda.ILayerVersion;
  /** Per API key. @default { rateLimit: 10, burstLimit: 20 } */
  throttle?: { rateLimit: number; burstLimit: number };
  /** Per API key. @default { limit: 10000, period: "DAY" } */
  quota?: { limit: number; period: 'DAY' | 'WEEK' | 'MONTH' };
  /** Reserved concurrency per function. @default predict 20, uploads 5, authorizer 5 */
  concurrency?: { predict: number; uploads: number; authorizer: number };
  /**
   * The one browser origin allowed to call the API (the tenant's dashboard,
   * `https://<distribution domain>`): preflight answers, the functions' answers and
   * API Gateway's own error answers name it. Never `*`. @default no CORS
   */
  allowedOrigin?: string;
}

/** The access log line: who (key, authorizer principal, address) did what, and how it ended. */
const ACCESS_LOG_FORMAT = apigw.AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    time: '$context.requestTime',
    ip: '$context.identity.sourceIp',
    userAgent: '$context.identity.userAgent',
    apiKeyId: '$context.identity.apiKeyId',
    principal: '$context.authorizer.principalId',
    method: '$context.httpMethod',
    route: '$context.resourcePath',
    path: '$context.path',
    status: '$context.status',
    error: '$context.error.responseType',
    latencyMs: '$context.responseLatency',
    integrationLatencyMs: '$context.integration.latency',
    responseBytes: '$context.responseLength',
  }),
);

/**
 * Largest base64 image accepted in one instance: 6 MiB of text. Lambda takes at
 * most 6 MB per synchronous request, below API Gateway's own 10 MB, so that is the
 * real limit of a whole body (the handler answers 413 above it, as the local server does).
 */
export const MAX_IMAGE_BASE64_CHARS = 6 * 1024 * 1024;
/** The same bound as MAX_INSTANCES in shared/schemas/predict.ts. */
export const MAX_INSTANCES = 32;

const errorTemplate = (code: ErrorCode, message: string) => ({ 'application/json': `{"error":{"code":"${code}","message":${message}}}` });

/**
 * The tenant's HTTP API: predict and model information, and upload URLs. Every
 * method needs the tenant's API key; a usage plan throttles and caps it.
 */
export class InferenceApi extends Construct {
  public readonly api: apigw.RestApi;
  public readonly apiKey: apigw.IApiKey;
  public readonly usagePlan: apigw.UsagePlan;
  /** Needed, besides being a valid key, on the routes that change things (rollback, promote, uploads). */
  public readonly adminApiKey: apigw.IApiKey;
  public readonly predictFunction: PlatformFunction;
  public readonly uploadsFunction: PlatformFunction;
  public readonly authorizerFunction: PlatformFunction;
  public readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: InferenceApiProps) {
    super(scope, id);
    const throttle = props.throttle ?? { rateLimit: 10, burstLimit: 20 };
    const quota = props.quota ?? { limit: 10_000, period: 'DAY' as const };
    const concurrency = props.concurrency ?? { predict: 20, uploads: 5, authorizer: 5 };
    const storeEnv = { STORE_KIND: 's3', BUCKET_NAME: props.bucket.bucketName };
    // Read by withCors (shared/http/cors.ts) on the functions' answers.
    const corsEnv: Record<string, string> = props.allowedOrigin ? { TL_ALLOWED_ORIGIN: props.allowedOrigin } : {};

    this.predictFunction = new PlatformFunction(this, 'PredictFunction', {
      name: 'predict',
      description: 'Predictions and model information',
      // API Gateway waits at most 29 s for an integration.
      timeout: Duration.seconds(29),
      // Lambda's CPU share grows with memory; wasm inference is CPU-bound and models stay cached.
      memorySize: 3008,
      layers: [props.mlRuntime],
      environment: { ...storeEnv, ...corsEnv, MODEL_CACHE_SIZE: '4' },
      reservedConcurrentExecutions: concurrency.predict,
    });
    grantPrefix(props.bucket, this.predictFunction, 'models/', ['list', 'read']);
    grantPrefix(props.bucket, this.predictFunction, 'base-models/', ['list', 'read']);
    grantPrefix(props.bucket, this.predictFunction, 'jobs/', ['list', 'read']);
    // POST /models/{model}/rollback moves an alias, and nothing else.
    grantPrefix(props.bucket, this.predictFunction, 'models/*/aliases/', ['write']);

    this.uploadsFunction = new PlatformFunction(this, 'UploadsFunction', {
      name: 'uploads',
      description: 'Presigned upload URLs under datasets/<dataset>/',
      environment: { ...storeEnv, ...corsEnv },
      reservedConcurrentExecutions: concurrency.uploads,
    });
    // A presigned URL carries the signer's rights: only PUT, only under datasets/.
    grantPrefix(props.bucket, this.uploadsFunction, 'datasets/', ['write']);

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: logs.RetentionDays.ONE_YEAR });
    this.api = new apigw.RestApi(this, 'Api', {
      restApiName: props.apiName,
      description: 'Transfer learning platform: predict, models, uploads',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      apiKeySourceType: apigw.ApiKeySourceType.HEADER,
      defaultMethodOptions: { apiKeyRequired: true },
      // Browsers send a preflight (OPTIONS, no key) before calls with x-api-key; API Gateway
      // answers it itself (mock integration), for the dashboard's origin only.
      defaultCorsPreflightOptions: props.allowedOrigin
        ? {
            allowOrigins: [props.allowedOrigin],
            allowMethods: ['GET', 'POST', 'OPTIONS'],
            allowHeaders: ['content-type', 'x-api-key'],
            maxAge: Duration.hours(1),
          }
        : undefined,
      // The ONNX export answers base64 from Lambda; API Gateway sends it as bytes to clients
      // that accept this type (`tl export` does), as text otherwise.
      binaryMediaTypes: ['application/octet-stream'],
      deployOptions: {
        stageName: 'v1',
        throttlingRateLimit: throttle.rateLimit,
        throttlingBurstLimit: throttle.burstLimit,
        metricsEnabled: true,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: ACCESS_LOG_FORMAT,
        // Execution logs of failures only: INFO would log every request's details twice.
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        tracingEnabled: true,
      },
      // Execution logging needs the account's API Gateway CloudWatch role. Every tenant
      // stack sets it to a role of its own (all equivalent) and retains the role on
      // destroy, so logging keeps working whichever tenants come and go.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeApiFindings(this.api);
    addErrorResponses(this.api, props.allowedOrigin);

    // Parameters too: path parameters are always required, and no route declares others.
    const validator = new apigw.RequestValidator(this, 'BodyValidator', { restApi: this.api, validateRequestBody: true, validateRequestParameters: true });
    const predictModel = addPredictModel(this.api);

    // Routes that change the tenant's models or start GPU jobs need the admin key.
    this.authorizerFunction = new PlatformFunction(this, 'AdminAuthorizerFunction', {
      name: 'authorizer',
      description: 'Lets only the admin key through to rollback, promote and uploads',
      memorySize: 256,
      timeout: Duration.seconds(5),
      reservedConcurrentExecutions: concurrency.authorizer,
    });
    const admin = new apigw.RequestAuthorizer(this, 'AdminAuthorizer', {
      handler: this.authorizerFunction,
      identitySources: [apigw.IdentitySource.header('x-api-key')],
      // One decision per key for 5 minutes: the authorizer runs about once per key, not per call.
      resultsCacheTtl: Duration.minutes(5),
    });
    const adminOnly: apigw.MethodOptions = { authorizer: admin, authorizationType: apigw.AuthorizationType.CUSTOM };

    const predict = new apigw.LambdaIntegration(this.predictFunction);
    const models = this.api.root.addResource('models');
    const readMethods = [models.addMethod('GET', predict)];
    const model = models.addResource('{model}');
    readMethods.push(model.addMethod('GET', predict));
    readMethods.push(model.addResource('job').addMethod('GET', predict));
    // Versions of a model (the dashboard's history) and the ONNX export: reads.
    const versions = model.addResource('versions');
    readMethods.push(versions.addMethod('GET', predict));
    const version = versions.addResource('{version}');
    readMethods.push(version.addResource('report').addMethod('GET', predict));
    readMethods.push(version.addResource('dataset').addMethod('GET', predict));
    readMethods.push(model.addResource('export').addMethod('GET', predict));
    readMethods.push(model.addResource('card').addMethod('GET', predict));
    // Alias moves: the served version changes for every client.
    model.addResource('rollback').addMethod('POST', predict, adminOnly);
    model.addResource('promote').addMethod('POST', predict, adminOnly);
    readMethods.push(
      model.addResource('predict').addMethod('POST', predict, { requestValidator: validator, requestModels: { 'application/json': predictModel } }),
    );

    const uploads = this.api.root.addResource('datasets').addResource('{dataset}').addResource('uploads');
    uploads.addMethod('POST', new apigw.LambdaIntegration(this.uploadsFunction), adminOnly);

    acknowledgeMethodFindings(this.api, readMethods);

    this.apiKey = this.api.addApiKey('ApiKey', { description: 'Tenant API key (x-api-key header): reads and predictions' });
    // Not api.addApiKey: that ties the key to the stage, and the authorizer (a dependency
    // of the stage's deployment) must name the key: a cycle. The usage plan links it.
    this.adminApiKey = new apigw.ApiKey(this, 'AdminApiKey', { description: 'Tenant admin key (x-api-key header): also rollback, promote and uploads' });
    this.usagePlan = this.api.addUsagePlan('UsagePlan', {
      description: 'Per-key throttle and quota of the tenant',
      throttle,
      quota: { limit: quota.limit, period: apigw.Period[quota.period] },
      apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
    });
    this.usagePlan.addApiKey(this.apiKey);
    this.usagePlan.addApiKey(this.adminApiKey);

    this.authorizerFunction.addEnvironment('ADMIN_API_KEY_ID', this.adminApiKey.keyId);
    // Reads this one key's value, and no other key's.
    this.authorizerFunction.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['apigateway:GET'],
        resources: [Stack.of(this).formatArn({ service: 'apigateway', account: '', resource: '/apikeys', resourceName: this.adminApiKey.keyId })],
      }),
    );
  }
}

/** Errors API Gateway answers itself, in the platform's error shape. */
function addErrorResponses(api: apigw.RestApi, allowedOrigin: string | undefined): void {
  // Without the header a browser hides these answers, and the page could not say "invalid key".
  const responseHeaders = allowedOrigin ? { 'Access-Control-Allow-Origin': `'${allowedOrigin}'`, Vary: "'Origin'" } : undefined;
  // Codes are typed by the one vocabulary, so a gateway answer cannot drift from the functions' spelling.
  const responses: { id: string; type: apigw.ResponseType; statusCode: string; code: ErrorCode; message: string }[] = [
    {
      id: 'BadRequestBody',
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      code: 'INVALID_REQUEST',
      message: '"$context.error.validationErrorString"',
    },
    { id: 'InvalidApiKey', type: apigw.ResponseType.INVALID_API_KEY, statusCode: '403', code: 'INVALID_API_KEY', message: '"missing or invalid x-api-key"' },
    { id: 'NoSuchRoute', type: apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, statusCode: '404', code: 'NOT_FOUND', message: '"no such route"' },
    { id: 'TooLarge', type: apigw.ResponseType.REQUEST_TOO_LARGE, statusCode: '413', code: 'PAYLOAD_TOO_LARGE', message: '"request body too large"' },
    { id: 'Throttled', type: apigw.ResponseType.THROTTLED, statusCode: '429', code: 'THROTTLED', message: '"too many requests"' },
    { id: 'QuotaExceeded', type: apigw.ResponseType.QUOTA_EXCEEDED, statusCode: '429', code: 'QUOTA_EXCEEDED', message: '"request quota exceeded"' },
    // The admin authorizer: no x-api-key at all, or a key that is not the admin key.
    // (No key is answered as API Gateway answers a missing key on any other route.)
    { id: 'NoKey', type: apigw.ResponseType.UNAUTHORIZED, statusCode: '403', code: 'INVALID_API_KEY', message: '"missing or invalid x-api-key"' },
    {
      id: 'NotAdmin',
      type: apigw.ResponseType.ACCESS_DENIED,
      statusCode: '403',
      code: 'ADMIN_KEY_REQUIRED',
      message: '"this route changes the tenant\'s data: call it with the admin key"',
    },
  ];
  for (const r of responses)
    api.addGatewayResponse(r.id, { type: r.type, statusCode: r.statusCode, templates: errorTemplate(r.code, r.message), responseHeaders });
}

/** The predict body, validated by API Gateway before the function runs. */
function addPredictModel(api: apigw.RestApi): apigw.Model {
  return api.addModel('PredictRequestModel', {
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
}

/** cdk-nag findings about the API as a whole, each acknowledged with why. */
function acknowledgeApiFindings(api: apigw.RestApi): void {
  const cloudWatchRole = api.node.tryFindChild('CloudWatchRole');
  if (cloudWatchRole)
    Validations.of(cloudWatchRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        "API Gateway's account-level logging role; AWS documents this managed policy for it, and the execution log groups it writes are named by API id at run time.",
    });
  Validations.of(api.deploymentStage).acknowledge({
    id: 'AwsSolutions-APIG3',
    reason:
      'No WAF web ACL: the usage plan throttles and caps every key, the request validator bounds bodies, and a web ACL per tenant costs about 6 USD a month while the platform is idle. Attach one when the API is exposed to untrusted networks at scale.',
  });
}

/** Reads and predictions carry the tenant key only; no method uses Cognito. */
function acknowledgeMethodFindings(api: apigw.RestApi, readMethods: apigw.Method[]): void {
  for (const method of readMethods) {
    Validations.of(method).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        "Reads and predictions are authorised by the tenant's API key (required on every method, throttled and capped by the usage plan); routes that change data also need the admin key through the Lambda authorizer.",
    });
  }
  for (const method of api.methods.filter((m) => m.httpMethod === 'OPTIONS')) {
    Validations.of(method).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'CORS preflight: browsers send OPTIONS without credentials by design (Fetch standard), so it cannot require the key. API Gateway answers it itself (mock integration, no function runs) with the headers that let only the dashboard origin in.',
    });
  }
  for (const method of api.methods) {
    Validations.of(method).acknowledge({
      id: 'AwsSolutions-COG4',
      reason:
        'Callers are applications holding per-tenant keys, not end users who sign in: there is no user directory for a Cognito authorizer to check. Mutating routes use the admin-key Lambda authorizer.',
    });
  }
}
