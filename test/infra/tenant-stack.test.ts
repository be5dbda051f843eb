import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthTenants } from './synth.js';
import { API_ROUTES } from '../../shared/local/server.js';

type Resource = { Type: string; Properties?: Record<string, any> };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);
const logicalIdOf = (template: Template, type: string, props: Record<string, unknown> = {}) => {
  const ids = Object.keys(template.findResources(type, props ? { Properties: props } : undefined));
  if (ids.length !== 1) throw new Error(`expected one ${type}, found ${ids.length}`);
  return ids[0];
};

/** Policy statements of the role a function (by its logical id prefix) runs as. */
function statementsOfRoleFor(template: Template, functionIdPrefix: string): Statement[] {
  const fns = template.findResources('AWS::Lambda::Function') as Record<string, Resource>;
  const fnId = Object.keys(fns).find((id) => id.startsWith(functionIdPrefix));
  if (!fnId) throw new Error(`no function ${functionIdPrefix}`);
  const roleId = (fns[fnId].Properties!.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
  return statementsOfRole(template, roleId);
}

function statementsOfRole(template: Template, roleId: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy') as Record<string, Resource>;
  return Object.values(policies)
    .filter((p) => (p.Properties!.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties!.PolicyDocument.Statement as Statement[]);
}

/** The bucket ARN objects a statement's resources may be: the bucket or `bucket/<prefix>*`. */
function bucketPrefixesOf(statement: Statement, bucketId: string): string[] {
  return resourcesOf(statement).map((r) => {
    const json = JSON.stringify(r);
    if (json === JSON.stringify({ 'Fn::GetAtt': [bucketId, 'Arn'] })) return '';
    const join = (r as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    if (join && JSON.stringify(join[1][0]) === JSON.stringify({ 'Fn::GetAtt': [bucketId, 'Arn'] })) return String(join[1][1]);
    throw new Error(`statement ${JSON.stringify(actionsOf(statement))} reaches ${json}, outside the tenant bucket`);
  });
}

describe('TenantStack', () => {
  let template: Template;
  let bucketId: string;

  beforeAll(() => {
    template = synthTenants([{ id: 'acme' }]).templates[0]!;
    bucketId = Object.keys(template.findResources('AWS::S3::Bucket')).find((id) => id.startsWith('IngestBucket'))!;
  });

  describe('Ingest', () => {
    it('encrypts, blocks public access and versions the bucket, keeping it on stack deletion', () => {
      template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        Properties: Match.objectLike({
          BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
          PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
          VersioningConfiguration: { Status: 'Enabled' },
        }),
      });
      expect(JSON.stringify(template.toJSON())).not.toMatch(/"BucketName"\s*:\s*"/);
    });

    it('expires prepared data, job records with their checkpoints, and old versions', () => {
      template.hasResourceProperties('AWS::S3::Bucket', {
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({ Prefix: 'prepared/', ExpirationInDays: 30, Status: 'Enabled' }),
            Match.objectLike({ Prefix: 'cache/', ExpirationInDays: 30, Status: 'Enabled' }),
            Match.objectLike({ Prefix: 'jobs/', ExpirationInDays: 30, Status: 'Enabled' }),
            Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 }, Status: 'Enabled' }),
          ]),
        },
      });
    });

    it('denies every request to the bucket that is not over TLS', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: bucketId },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    });

    it('sends only train.json uploads under datasets/ to the queue', () => {
      template.hasResourceProperties('Custom::S3BucketNotifications', {
        BucketName: { Ref: bucketId },
        NotificationConfiguration: {
          QueueConfigurations: [
            {
              Events: ['s3:ObjectCreated:*'],
              Filter: {
                Key: {
                  FilterRules: Match.arrayWith([
                    { Name: 'suffix', Value: 'train.json' },
                    { Name: 'prefix', Value: 'datasets/' },
                  ]),
                },
              },
              QueueArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IngestQueue'), 'Arn'] },
            },
          ],
        },
      });
    });

    it('has a DLQ with maxReceiveCount and a visibility timeout of 6x the function timeout', () => {
      const dlqId = Object.keys(template.findResources('AWS::SQS::Queue')).find((id) => id.startsWith('IngestDeadLetterQueue'))!;
      const fn = Object.values(
        template.findResources('AWS::Lambda::Function', { Properties: { Description: Match.stringLikeRegexp('train.json') } }),
      )[0] as Resource;
      const timeout = fn.Properties!.Timeout as number;

      template.hasResourceProperties('AWS::SQS::Queue', {
        VisibilityTimeout: timeout * 6,
        RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: 3 },
        SqsManagedSseEnabled: true,
      });
      expect(timeout).toBe(900);
    });

    it('alarms when a message reaches the DLQ', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Namespace: 'AWS/SQS',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    });

    it('feeds the preprocess function one message at a time with per-record failures, at most 2 at once', () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        BatchSize: 1,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        EventSourceArn: Match.anyValue(),
        ScalingConfig: { MaximumConcurrency: 2 },
      });
    });

    it('logs every request to the tenant bucket in a bucket of its own', () => {
      const logsId = Object.keys(template.findResources('AWS::S3::Bucket')).find((id) => id.startsWith('IngestAccessLogsBucket'))!;
      template.hasResourceProperties('AWS::S3::Bucket', {
        LoggingConfiguration: { DestinationBucketName: { Ref: logsId }, LogFilePrefix: 'tenant-bucket/' },
      });
    });

    it('gives the preprocess function the S3 and Batch settings through its environment', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Handler: 'index.handler',
        Runtime: 'nodejs24.x',
        Layers: [Match.anyValue()],
        Environment: {
          Variables: Match.objectLike({
            STORE_KIND: 's3',
            BUCKET_NAME: { Ref: bucketId },
            JOB_RUNNER: 'batch',
            JOB_QUEUE: { 'Fn::GetAtt': [logicalIdOf(template, 'AWS::Batch::JobQueue'), 'JobQueueArn'] },
            JOB_DEFINITION: { Ref: logicalIdOf(template, 'AWS::Batch::JobDefinition') },
          }),
        },
      });
    });
  });

  describe('Training', () => {
    it('runs GPU instance types on Spot, scaling to zero', () => {
      template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
        Type: 'managed',
        ComputeResources: Match.objectLike({
          Type: 'SPOT',
          MinvCpus: 0,
          InstanceTypes: Match.arrayWith(['g4dn.xlarge', 'g5.xlarge']),
          AllocationStrategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
        }),
      });
    });

    it('has no NAT gateway, so the network costs nothing when idle', () => {
      template.resourceCountIs('AWS::EC2::NatGateway', 0);
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
    });

    it('asks for a GPU, retries only Spot reclaims, and times out', () => {
      template.hasResourceProperties('AWS::Batch::JobDefinition', {
        Type: 'container',
        ContainerProperties: Match.objectLike({
          ResourceRequirements: Match.arrayWith([{ Type: 'GPU', Value: '1' }]),
          Environment: Match.arrayWith([
            { Name: 'STORE_KIND', Value: 's3' },
            { Name: 'BUCKET_NAME', Value: { Ref: bucketId } },
            // The tenant on every log line and metric of the job.
            { Name: 'TL_TENANT', Value: 'acme' },
          ]),
        }),
        RetryStrategy: {
          Attempts: 3,
          EvaluateOnExit: [
            { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
            { Action: 'EXIT', OnReason: '*' },
          ],
        },
        Timeout: { AttemptDurationSeconds: 4 * 3600 },
      });
    });

    it('builds the job image from the repository Dockerfile', () => {
      const assets = JSON.stringify(template.toJSON());
      expect(assets).toMatch(/cdk-[a-z0-9]+-container-assets/);
    });

    it('launches GPU hosts from a template that requires IMDSv2 with hop limit 1, on the pinned AL2023 NVIDIA image', () => {
      const templateId = logicalIdOf(template, 'AWS::EC2::LaunchTemplate');
      template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({ MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 } }),
      });
      template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
        ComputeResources: Match.objectLike({
          Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
          LaunchTemplate: Match.objectLike({ LaunchTemplateId: { Ref: templateId } }),
        }),
      });
    });

    it("encrypts the hosts' root volumes and logs rejected traffic of the VPC", () => {
      template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({ BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })] }),
      });
      template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT', ResourceType: 'VPC' });
    });

    it('cancels jobs left RUNNABLE for an hour, whatever Batch says blocks them', () => {
      const queue = Object.values(template.findResources('AWS::Batch::JobQueue'))[0] as Resource;
      const actions = queue.Properties!.JobStateTimeLimitActions as Record<string, unknown>[];

      expect(actions.map((a) => a.Reason).sort()).toEqual([
        'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
        'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
      ]);
      for (const a of actions) expect(a).toMatchObject({ Action: 'CANCEL', State: 'RUNNABLE', MaxTimeSeconds: 3600 });
    });

    it('sends events the job-events function failed on to its dead-letter queue', () => {
      const dlqId = Object.keys(template.findResources('AWS::SQS::Queue')).find((id) => id.startsWith('TrainingJobEventsDeadLetterQueue'))!;
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: Match.stringLikeRegexp('^TrainingJobEventsFunction') },
        MaximumRetryAttempts: 2,
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [dlqId, 'Arn'] } } },
      });
    });

    it('sends failed jobs of this queue to the job-events function', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.batch'],
          'detail-type': ['Batch Job State Change'],
          detail: { jobQueue: [{ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::Batch::JobQueue'), 'JobQueueArn'] }], status: ['FAILED'] },
        },
        Targets: [
          Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TrainingJobEventsFunction'), 'Arn'] }, DeadLetterConfig: Match.anyValue() }),
        ],
      });
    });
  });

  describe('InferenceApi', () => {
    it('is named after the tenant', () => {
      template.hasResourceProperties('AWS::ApiGateway::RestApi', { Name: 'tl-acme' });
    });

    it('declares every route the embedded gateway serves, and no other; the export reaches clients as bytes', () => {
      // Full path of each API Gateway resource, from its PathPart and ParentId chain.
      const resources = template.findResources('AWS::ApiGateway::Resource') as Record<string, Resource>;
      const pathOf = (ref: unknown): string => {
        const id = (ref as { Ref?: string }).Ref;
        if (!id) return ''; // the API's root resource (Fn::GetAtt RootResourceId)
        const r = resources[id].Properties as { PathPart: string; ParentId: unknown };
        return `${pathOf(r.ParentId)}/${r.PathPart}`;
      };
      const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as Resource[];
      const declared = methods
        .map((m) => m.Properties as { HttpMethod: string; ResourceId: unknown })
        .filter((m) => m.HttpMethod !== 'OPTIONS')
        .map((m) => `${m.HttpMethod} ${pathOf(m.ResourceId)}`);

      expect(declared.sort()).toEqual(API_ROUTES.map((r) => `${r.method} ${r.resource}`).sort());
      template.hasResourceProperties('AWS::ApiGateway::RestApi', { BinaryMediaTypes: ['application/octet-stream'] });
    });

    it('needs the admin key, through the Lambda authorizer, on the routes that change things', () => {
      const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as Resource[];
      const authorizerId = logicalIdOf(template, 'AWS::ApiGateway::Authorizer');
      const mutating = methods.filter((m) => m.Properties!.HttpMethod === 'POST' && !JSON.stringify(m.Properties!.ResourceId).includes('predict'));
      const reads = methods.filter((m) => !mutating.includes(m));

      // rollback, promote and uploads (and any route added later that is not predict)
      expect(mutating).toHaveLength(3);
      for (const m of mutating) expect(m.Properties).toMatchObject({ AuthorizationType: 'CUSTOM', AuthorizerId: { Ref: authorizerId }, ApiKeyRequired: true });
      for (const m of reads) expect(m.Properties!.AuthorizationType).toBe('NONE');
      template.hasResourceProperties('AWS::ApiGateway::Authorizer', {
        Type: 'REQUEST',
        IdentitySource: 'method.request.header.x-api-key',
        AuthorizerResultTtlInSeconds: 300,
      });
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: 'ACCESS_DENIED',
        StatusCode: '403',
        ResponseTemplates: { 'application/json': Match.stringLikeRegexp('"code":"ADMIN_KEY_REQUIRED"') },
      });
    });

    it('lets the authorizer read the admin key and nothing else', () => {
      const adminKeyId = Object.keys(template.findResources('AWS::ApiGateway::ApiKey')).find((id) => id.startsWith('InferenceAdminApiKey'))!;
      const statements = statementsOfRoleFor(template, 'InferenceAdminAuthorizerFunction');
      const get = statements.filter((st) => actionsOf(st).some((a) => a.startsWith('apigateway:')));

      expect(get).toHaveLength(1);
      expect(actionsOf(get[0])).toEqual(['apigateway:GET']);
      // arn:<partition>:apigateway:<region>::/apikeys/<admin key id>, one key, no wildcard
      expect(JSON.stringify(get[0].Resource)).toContain('::/apikeys/');
      expect(JSON.stringify(get[0].Resource)).toContain(JSON.stringify({ Ref: adminKeyId }));
      expect(JSON.stringify(get[0].Resource)).not.toContain('*');
      template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: { ADMIN_API_KEY_ID: { Ref: adminKeyId } } },
      });
    });

    it('writes JSON access logs saying which key did what, execution logs of errors, and X-Ray traces', () => {
      const stage = Object.values(template.findResources('AWS::ApiGateway::Stage'))[0] as Resource;
      const { AccessLogSetting, MethodSettings } = stage.Properties as {
        AccessLogSetting: { Format: string; DestinationArn: unknown };
        MethodSettings: unknown[];
      };
      const format = JSON.parse(AccessLogSetting.Format) as Record<string, string>;

      expect(format).toMatchObject({
        apiKeyId: '$context.identity.apiKeyId',
        principal: '$context.authorizer.principalId',
        method: '$context.httpMethod',
        status: '$context.status',
      });
      expect(JSON.stringify(AccessLogSetting.DestinationArn)).toMatch(/^\{"Fn::GetAtt":\["InferenceAccessLogs[0-9A-F]+","Arn"\]\}$/);
      expect(stage.Properties!.TracingEnabled).toBe(true);
      expect(MethodSettings).toContainEqual(expect.objectContaining({ HttpMethod: '*', ResourcePath: '/*', LoggingLevel: 'ERROR', DataTraceEnabled: false }));
    });

    it('requires the API key on every method', () => {
      const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as Resource[];
      const routed = methods.filter((m) => m.Properties!.HttpMethod !== 'OPTIONS');

      // GET /models, GET /models/{model}, GET job, versions, report, dataset, export, card,
      // POST predict, POST rollback, POST promote, POST uploads
      expect(routed).toHaveLength(12);
      for (const m of routed) expect(m.Properties!.ApiKeyRequired).toBe(true);
    });

    it('has the predict key and the admin key in a usage plan with throttle and quota', () => {
      const keyIds = Object.keys(template.findResources('AWS::ApiGateway::ApiKey'));
      const planId = logicalIdOf(template, 'AWS::ApiGateway::UsagePlan');
      expect(keyIds).toHaveLength(2);

      template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
        Throttle: { RateLimit: 10, BurstLimit: 20 },
        Quota: { Limit: 10000, Period: 'DAY' },
        ApiStages: [Match.objectLike({ Stage: Match.anyValue() })],
      });
      for (const keyId of keyIds)
        template.hasResourceProperties('AWS::ApiGateway::UsagePlanKey', { KeyId: { Ref: keyId }, UsagePlanId: { Ref: planId }, KeyType: 'API_KEY' });
      template.hasResourceProperties('AWS::ApiGateway::ApiKey', { Enabled: true, Name: Match.absent() });
    });

    it('validates the predict body and answers API errors in the platform shape', () => {
      template.hasResourceProperties('AWS::ApiGateway::Method', {
        HttpMethod: 'POST',
        RequestValidatorId: { Ref: logicalIdOf(template, 'AWS::ApiGateway::RequestValidator') },
        RequestModels: { 'application/json': Match.anyValue() },
      });
      template.hasResourceProperties('AWS::ApiGateway::Model', {
        Schema: Match.objectLike({ properties: Match.objectLike({ instances: Match.objectLike({ maxItems: 32 }) }) }),
      });
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: 'REQUEST_TOO_LARGE',
        StatusCode: '413',
        ResponseTemplates: { 'application/json': Match.stringLikeRegexp('"error":\\{"code":"PAYLOAD_TOO_LARGE"') },
      });
    });
  });

  describe('Alerts', () => {
    const alarms = () => Object.values(template.findResources('AWS::CloudWatch::Alarm')) as Resource[];

    it('has a topic that accepts only TLS publishers, and no subscriber unless the tenant names an email', () => {
      template.resourceCountIs('AWS::SNS::Topic', 1);
      template.resourceCountIs('AWS::SNS::Subscription', 0);
      template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
    });

    it('notifies the topic from every alarm', () => {
      const topicId = logicalIdOf(template, 'AWS::SNS::Topic');

      expect(alarms().length).toBeGreaterThanOrEqual(15);
      for (const a of alarms()) expect(a.Properties!.AlarmActions, a.Properties!.AlarmDescription as string).toEqual([{ Ref: topicId }]);
    });

    it('watches both dead-letter queues, failed Batch jobs, the API, and every function for errors and throttles', () => {
      const watched = alarms().map((a) => `${a.Properties!.Namespace as string}/${a.Properties!.MetricName as string}`);
      const dimensionsOf = (metric: string) =>
        alarms()
          .filter((a) => a.Properties!.MetricName === metric)
          .map((a) => JSON.stringify(a.Properties!.Dimensions));

      expect(watched.filter((w) => w === 'AWS/SQS/ApproximateNumberOfMessagesVisible')).toHaveLength(2);
      expect(dimensionsOf('ApproximateNumberOfMessagesVisible').join()).toMatch(
        /IngestDeadLetterQueue.*TrainingJobEventsDeadLetterQueue|TrainingJobEventsDeadLetterQueue.*IngestDeadLetterQueue/,
      );
      expect(dimensionsOf('TriggeredRules').join()).toContain('TrainingJobFailedRule');
      expect(watched).toEqual(expect.arrayContaining(['AWS/ApiGateway/5XXError', 'AWS/ApiGateway/Latency']));
      for (const fn of ['IngestPreprocess', 'TrainingJobEvents', 'InferencePredict', 'InferenceUploads', 'InferenceAdminAuthorizer']) {
        expect(dimensionsOf('Errors').join(), fn).toContain(fn);
        expect(dimensionsOf('Throttles').join(), fn).toContain(fn);
      }
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Latency', ExtendedStatistic: 'p99', Threshold: 10000 });
    });
  });

  describe('least-privilege IAM', () => {
    it('never grants s3:* or an S3 action on every resource', () => {
      const policies = Object.entries(template.findResources('AWS::IAM::Policy')) as [string, Resource][];
      for (const [id, p] of policies) {
        for (const s of p.Properties!.PolicyDocument.Statement as Statement[]) {
          const s3Actions = actionsOf(s).filter((a) => a.startsWith('s3:'));
          expect(actionsOf(s), id).not.toContain('*');
          expect(s3Actions, id).not.toContain('s3:*');
          // CDK's notification custom resource configures the bucket; it touches no data. The
          // dashboard's deployment role touches the dashboard bucket only (test/infra/dashboard.test.ts).
          if (s3Actions.length && !id.startsWith('BucketNotificationsHandler') && !id.startsWith('DashboardDeploymentRole')) bucketPrefixesOf(s, bucketId);
        }
      }
    });

    it('names every S3 action (no wildcards, no version deletes) and lists only under granted prefixes', () => {
      const policies = Object.entries(template.findResources('AWS::IAM::Policy')) as [string, Resource][];
      let lists = 0;
      for (const [id, p] of policies) {
        if (id.includes('BucketNotificationsHandler')) continue;
        for (const st of p.Properties!.PolicyDocument.Statement as Statement[]) {
          const s3Actions = actionsOf(st).filter((a) => a.startsWith('s3:'));
          for (const a of s3Actions)
            expect(['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject', 's3:ListBucket'], `${id} ${a}`).toContain(a);
          // The dashboard's deployment lists its own bucket to sync it (test/infra/dashboard.test.ts).
          if (!s3Actions.includes('s3:ListBucket') || id.startsWith('DashboardDeploymentRole')) continue;
          lists++;
          // ListBucket alone, on the bucket, for keys under one prefix only.
          expect(s3Actions, id).toEqual(['s3:ListBucket']);
          expect(bucketPrefixesOf(st, bucketId), id).toEqual(['']);
          expect(st.Condition, id).toMatchObject({ StringLike: { 's3:prefix': [expect.stringMatching(/^[a-z-]+\/\*$/)] } });
        }
      }
      expect(lists).toBeGreaterThan(0);
    });

    it('runs every platform function on Node.js 24, traced, with reserved concurrency and a role of its own without managed policies', () => {
      const fns = Object.entries(template.findResources('AWS::Lambda::Function')) as [string, Resource][];
      const platform = fns.filter(([id]) => /^(Ingest|Training|Inference)/.test(id));
      const roles = template.findResources('AWS::IAM::Role') as Record<string, Resource>;

      expect(platform.map(([id]) => id.replace(/Function.*$/, ''))).toEqual(
        expect.arrayContaining(['IngestPreprocess', 'TrainingJobEvents', 'InferencePredict', 'InferenceUploads', 'InferenceAdminAuthorizer']),
      );
      for (const [id, fn] of platform) {
        expect(fn.Properties!.Runtime, id).toBe('nodejs24.x');
        expect(fn.Properties!.ReservedConcurrentExecutions, id).toBeGreaterThanOrEqual(1);
        expect(fn.Properties!.TracingConfig, id).toEqual({ Mode: 'Active' });
        const roleId = (fn.Properties!.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
        expect(roles[roleId].Properties!.ManagedPolicyArns, id).toBeUndefined();
      }
    });

    const s3Grants = (statements: Statement[]) =>
      statements
        .filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')))
        .flatMap((s) => bucketPrefixesOf(s, bucketId).map((prefix) => ({ prefix, actions: actionsOf(s).filter((a) => a.startsWith('s3:')) })));

    it('lets the predict function read models, base models and job status, and write only aliases (rollback)', () => {
      const grants = s3Grants(statementsOfRoleFor(template, 'InferencePredictFunction'));

      expect(new Set(grants.map((g) => g.prefix))).toEqual(new Set(['', '/models/*', '/base-models/*', '/jobs/*', '/models/*/aliases/*']));
      expect(grants.filter((g) => g.actions.some((a) => /Put|Delete/.test(a))).map((g) => g.prefix)).toEqual(['/models/*/aliases/*']);
      expect(grants.flatMap((g) => g.actions).filter((a) => /Delete/.test(a))).toEqual([]);
    });

    it('lets the uploads function only put under datasets/', () => {
      const grants = s3Grants(statementsOfRoleFor(template, 'InferenceUploadsFunction'));

      expect(grants.map((g) => g.prefix)).toEqual(['/datasets/*']);
      expect(grants[0].actions.every((a) => a.startsWith('s3:PutObject') || a.startsWith('s3:Abort'))).toBe(true);
    });

    it('lets the preprocess function read datasets and submit jobs only to its queue', () => {
      const statements = statementsOfRoleFor(template, 'IngestPreprocessFunction');
      const grants = s3Grants(statements);
      const submit = statements.find((s) => actionsOf(s).includes('batch:SubmitJob'))!;

      expect(grants.find((g) => g.prefix === '/datasets/*')!.actions.some((a) => /Put|Delete/.test(a))).toBe(false);
      expect(new Set(grants.map((g) => g.prefix))).toEqual(new Set(['', '/datasets/*', '/base-models/*', '/prepared/*', '/jobs/*', '/models/*', '/cache/*']));
      expect(resourcesOf(submit)).toContainEqual({ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::Batch::JobQueue'), 'JobQueueArn'] });
      expect(resourcesOf(submit)).toHaveLength(2);
    });

    it('lets the training job reach only its prefixes of the tenant bucket', () => {
      const jobRoleId = logicalIdOf(template, 'AWS::IAM::Role', {
        AssumeRolePolicyDocument: Match.objectLike({ Statement: [Match.objectLike({ Principal: { Service: 'ecs-tasks.amazonaws.com' } })] }),
        Description: Match.stringLikeRegexp('Training job'),
      });
      const grants = s3Grants(statementsOfRole(template, jobRoleId));

      expect(new Set(grants.map((g) => g.prefix))).toEqual(new Set(['', '/prepared/*', '/base-models/*', '/models/*', '/jobs/*', '/cache/*']));
      expect(
        grants
          .filter((g) => g.prefix === '/prepared/*')
          .flatMap((g) => g.actions)
          .some((a) => /Put|Delete/.test(a)),
      ).toBe(false);
    });
  });
});

describe('tenant settings', () => {
  it('refuses to expire job records before the longest job can end', () => {
    expect(() => synthTenants([{ id: 'acme', jobTimeoutHours: 240, jobsRetentionDays: 30 }])).toThrow(/jobsRetentionDays/);
  });
});

describe('two tenants', () => {
  it('share no bucket, queue, API key or role, and name none of them', () => {
    const { templates } = synthTenants([
      { id: 'acme' },
      {
        id: 'globex',
        capacity: 'spot-then-on-demand',
        throttle: { rateLimit: 50, burstLimit: 100 },
        alarmEmail: 'ops@globex.example',
        runnableTimeoutMinutes: 30,
        apiLatencyP99AlarmMs: 3000,
        concurrency: { predict: 50, uploads: 5, preprocess: 8, preprocessMaxConcurrency: 6, jobEvents: 2, authorizer: 5 },
      },
    ]);
    const [acme, globex] = templates.map((t) => t.toJSON() as { Resources: Record<string, Resource> });

    for (const t of [acme, globex]) {
      const json = JSON.stringify(t);
      // Each stack owns its resources: nothing imported from another stack...
      expect(json).not.toContain('Fn::ImportValue');
      // ...and no fixed physical name that two stacks could both claim.
      for (const r of Object.values(t.Resources)) {
        for (const nameProp of ['BucketName', 'QueueName', 'RoleName', 'FunctionName', 'ComputeEnvironmentName', 'JobQueueName', 'JobDefinitionName']) {
          if (r.Type.startsWith('Custom::')) continue;
          expect(typeof r.Properties?.[nameProp], `${r.Type}.${nameProp}`).not.toBe('string');
        }
      }
      const count = (type: string) => Object.values(t.Resources).filter((r) => r.Type === type).length;
      // The tenant bucket and its access-log bucket, the dashboard's bucket and its CloudFront
      // log bucket; the predict key and the admin key.
      expect(count('AWS::S3::Bucket')).toBe(4);
      expect(count('AWS::ApiGateway::ApiKey')).toBe(2);
      expect(count('AWS::SQS::Queue')).toBeGreaterThanOrEqual(2);
    }
    // Tenant settings reach their own stack only.
    expect(JSON.stringify(Object.values(globex.Resources).filter((r) => r.Type === 'AWS::ApiGateway::UsagePlan'))).toContain('"RateLimit":50');
    expect(JSON.stringify(Object.values(acme.Resources).filter((r) => r.Type === 'AWS::ApiGateway::UsagePlan'))).toContain('"RateLimit":10');
    expect(Object.values(globex.Resources).filter((r) => r.Type === 'AWS::Batch::ComputeEnvironment')).toHaveLength(2);
    const of = (t: typeof acme, type: string) => Object.values(t.Resources).filter((r) => r.Type === type);
    expect(of(acme, 'AWS::ApiGateway::RestApi')[0].Properties!.Name).toBe('tl-acme');
    expect(of(globex, 'AWS::ApiGateway::RestApi')[0].Properties!.Name).toBe('tl-globex');
    expect(of(globex, 'AWS::SNS::Subscription')).toEqual([
      expect.objectContaining({ Properties: expect.objectContaining({ Protocol: 'email', Endpoint: 'ops@globex.example' }) }),
    ]);
    expect(of(acme, 'AWS::SNS::Subscription')).toHaveLength(0);
    for (const a of of(globex, 'AWS::Batch::JobQueue')[0].Properties!.JobStateTimeLimitActions as { MaxTimeSeconds: number }[])
      expect(a.MaxTimeSeconds).toBe(1800);
    expect(of(globex, 'AWS::Lambda::EventSourceMapping')[0].Properties!.ScalingConfig).toEqual({ MaximumConcurrency: 6 });
    expect(of(globex, 'AWS::Lambda::Function').map((f) => f.Properties!.ReservedConcurrentExecutions)).toEqual(expect.arrayContaining([50, 8]));
    expect(JSON.stringify(of(globex, 'AWS::CloudWatch::Alarm'))).toContain('"Threshold":3000');
  });
});
