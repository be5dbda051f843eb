import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthTenants } from './synth.js';

type Resource = { Type: string; Properties?: Record<string, any> };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);
const logicalIdOf = (template: Template, type: string, props: Record<string, unknown> = {}) => {
  const ids = Object.keys(template.findResources(type, props ? { Properties: props } : undefined));
  if (ids.length !== 1) throw new Error(`expected one ${type}, found ${ids.length}`);
  return ids[0]!;
};

/** Policy statements of the role a function (by its logical id prefix) runs as. */
function statementsOfRoleFor(template: Template, functionIdPrefix: string): Statement[] {
  const fns = template.findResources('AWS::Lambda::Function') as Record<string, Resource>;
  const fnId = Object.keys(fns).find((id) => id.startsWith(functionIdPrefix));
  if (!fnId) throw new Error(`no function ${functionIdPrefix}`);
  const roleId = (fns[fnId]!.Properties!.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
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
    bucketId = logicalIdOf(template, 'AWS::S3::Bucket');
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

    it('expires prepared data and old versions', () => {
      template.hasResourceProperties('AWS::S3::Bucket', {
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({ Prefix: 'prepared/', ExpirationInDays: 30, Status: 'Enabled' }),
            Match.objectLike({ Prefix: 'cache/', ExpirationInDays: 30, Status: 'Enabled' }),
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
              Filter: { Key: { FilterRules: Match.arrayWith([{ Name: 'suffix', Value: 'train.json' }, { Name: 'prefix', Value: 'datasets/' }]) } },
              QueueArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IngestQueue'), 'Arn'] },
            },
          ],
        },
      });
    });

    it('has a DLQ with maxReceiveCount and a visibility timeout of 6x the function timeout', () => {
      const dlqId = Object.keys(template.findResources('AWS::SQS::Queue')).find((id) => id.startsWith('IngestDeadLetterQueue'))!;
      const fn = Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Description: Match.stringLikeRegexp('train.json') } }))[0] as Resource;
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

    it('feeds the preprocess function one message at a time with per-record failures', () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        BatchSize: 1,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        EventSourceArn: Match.anyValue(),
      });
    });

    it('gives the preprocess function the S3 and Batch settings through its environment', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Handler: 'index.handler',
        Runtime: 'nodejs22.x',
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
          Environment: Match.arrayWith([{ Name: 'STORE_KIND', Value: 's3' }, { Name: 'BUCKET_NAME', Value: { Ref: bucketId } }]),
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

    it('sends failed jobs of this queue to the job-events function', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.batch'],
          'detail-type': ['Batch Job State Change'],
          detail: { jobQueue: [{ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::Batch::JobQueue'), 'JobQueueArn'] }], status: ['FAILED'] },
        },
        Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TrainingJobEventsFunction'), 'Arn'] }, DeadLetterConfig: Match.anyValue() })],
      });
    });
  });

  describe('InferenceApi', () => {
    it('requires the API key on every method', () => {
      const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as Resource[];
      const routed = methods.filter((m) => m.Properties!.HttpMethod !== 'OPTIONS');

      // GET /models, GET /models/{model}, GET job, POST predict, POST rollback, POST uploads
      expect(routed).toHaveLength(6);
      for (const m of routed) expect(m.Properties!.ApiKeyRequired).toBe(true);
    });

    it('has an API key in a usage plan with throttle and quota', () => {
      const keyId = logicalIdOf(template, 'AWS::ApiGateway::ApiKey');
      const planId = logicalIdOf(template, 'AWS::ApiGateway::UsagePlan');

      template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
        Throttle: { RateLimit: 10, BurstLimit: 20 },
        Quota: { Limit: 10000, Period: 'DAY' },
        ApiStages: [Match.objectLike({ Stage: Match.anyValue() })],
      });
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

  describe('least-privilege IAM', () => {
    it('never grants s3:* or an S3 action on every resource', () => {
      const policies = Object.entries(template.findResources('AWS::IAM::Policy')) as [string, Resource][];
      for (const [id, p] of policies) {
        for (const s of p.Properties!.PolicyDocument.Statement as Statement[]) {
          const s3Actions = actionsOf(s).filter((a) => a.startsWith('s3:'));
          expect(actionsOf(s), id).not.toContain('*');
          expect(s3Actions, id).not.toContain('s3:*');
          // CDK's notification custom resource configures the bucket; it touches no data.
          if (s3Actions.length && !id.startsWith('BucketNotificationsHandler')) bucketPrefixesOf(s, bucketId);
        }
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
      expect(grants[0]!.actions.every((a) => a.startsWith('s3:PutObject') || a.startsWith('s3:Abort'))).toBe(true);
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
      const jobRoleId = logicalIdOf(template, 'AWS::IAM::Role', { AssumeRolePolicyDocument: Match.objectLike({ Statement: [Match.objectLike({ Principal: { Service: 'ecs-tasks.amazonaws.com' } })] }), Description: Match.stringLikeRegexp('Training job') } as never);
      const grants = s3Grants(statementsOfRole(template, jobRoleId));

      expect(new Set(grants.map((g) => g.prefix))).toEqual(new Set(['', '/prepared/*', '/base-models/*', '/models/*', '/jobs/*', '/cache/*']));
      expect(grants.filter((g) => g.prefix === '/prepared/*').flatMap((g) => g.actions).some((a) => /Put|Delete/.test(a))).toBe(false);
    });
  });
});

describe('two tenants', () => {
  it('share no bucket, queue, API key or role, and name none of them', () => {
    const { templates } = synthTenants([{ id: 'acme' }, { id: 'globex', capacity: 'spot-then-on-demand', throttle: { rateLimit: 50, burstLimit: 100 } }]);
    const [acme, globex] = templates.map((t) => t.toJSON() as { Resources: Record<string, Resource> });

    for (const t of [acme!, globex!]) {
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
      expect(count('AWS::S3::Bucket')).toBe(1);
      expect(count('AWS::ApiGateway::ApiKey')).toBe(1);
      expect(count('AWS::SQS::Queue')).toBeGreaterThanOrEqual(2);
    }
    // Tenant settings reach their own stack only.
    expect(JSON.stringify(Object.values(globex!.Resources).filter((r) => r.Type === 'AWS::ApiGateway::UsagePlan'))).toContain('"RateLimit":50');
    expect(JSON.stringify(Object.values(acme!.Resources).filter((r) => r.Type === 'AWS::ApiGateway::UsagePlan'))).toContain('"RateLimit":10');
    expect(Object.values(globex!.Resources).filter((r) => r.Type === 'AWS::Batch::ComputeEnvironment')).toHaveLength(2);
  });
});
