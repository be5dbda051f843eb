import { Duration, IgnoreMode, Size, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { repoPath } from '../paths.js';
import { PlatformFunction } from './platform-function.js';

export type TrainingCapacity = 'spot' | 'on-demand' | 'spot-then-on-demand';

export interface TrainingProps {
  bucket: s3.IBucket;
  /** @default "spot" */
  capacity?: TrainingCapacity;
  /** @default 16 */
  maxvCpus?: number;
  /** Time limit of one attempt. @default 4 hours */
  jobTimeout?: Duration;
  /** Attempts in all, Spot reclaims included. @default 3 */
  attempts?: number;
  /** GPU instance types. @default g4dn.xlarge, g4dn.2xlarge, g5.xlarge, g5.2xlarge */
  instanceTypes?: ec2.InstanceType[];
}

/** Files the training image does not need: the Docker build context is the repository. */
const IMAGE_CONTEXT_EXCLUDE = ['node_modules', '.git', 'cdk.out', '.data', 'coverage', 'bench/results', 'test', 'layers/*/dist', 'dist', '*.log'];

/**
 * Training on AWS Batch: GPU instances that exist only while a job runs.
 *
 * Networking: public subnets and no NAT gateway. Batch instances need outbound
 * access to ECR, ECS and CloudWatch Logs; a NAT gateway costs about 32 USD a month
 * per AZ even when nothing runs, and interface endpoints for those services cost
 * about 7 USD a month each per AZ. Instances get a public IP but their security
 * group admits no inbound traffic; S3 traffic takes a (free) gateway endpoint.
 */
export class Training extends Construct {
  public readonly vpc: ec2.Vpc;
  public readonly computeEnvironments: batch.ManagedEc2EcsComputeEnvironment[];
  public readonly jobQueue: batch.JobQueue;
  public readonly jobDefinition: batch.EcsJobDefinition;
  public readonly jobRole: iam.Role;
  public readonly jobEventsFunction: PlatformFunction;
  public readonly jobFailedRule: events.Rule;

  constructor(scope: Construct, id: string, props: TrainingProps) {
    super(scope, id);
    const capacity = props.capacity ?? 'spot';

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    const securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: this.vpc,
      description: 'Training instances: outbound only',
      allowAllOutbound: true,
    });

    const instanceTypes = props.instanceTypes ?? ['g4dn.xlarge', 'g4dn.2xlarge', 'g5.xlarge', 'g5.2xlarge'].map((t) => new ec2.InstanceType(t));
    const environment = (envId: string, spot: boolean) =>
      new batch.ManagedEc2EcsComputeEnvironment(this, envId, {
        vpc: this.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
        securityGroups: [securityGroup],
        instanceTypes,
        useOptimalInstanceClasses: false,
        spot,
        allocationStrategy: spot ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
        // No instance runs, and nothing is billed, while the queue is empty.
        minvCpus: 0,
        maxvCpus: props.maxvCpus ?? 16,
        // Batch picks the ECS GPU-optimised AMI (NVIDIA driver) for GPU instance types.
      });
    this.computeEnvironments =
      capacity === 'on-demand'
        ? [environment('OnDemandComputeEnvironment', false)]
        : capacity === 'spot'
          ? [environment('SpotComputeEnvironment', true)]
          : [environment('SpotComputeEnvironment', true), environment('OnDemandComputeEnvironment', false)];
    this.jobQueue = new batch.JobQueue(this, 'JobQueue', {
      computeEnvironments: this.computeEnvironments.map((computeEnvironment, i) => ({ computeEnvironment, order: i + 1 })),
    });

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Training job: the tenant bucket prefixes it reads and writes, nothing else',
    });
    props.bucket.grantRead(this.jobRole, 'prepared/*');
    props.bucket.grantRead(this.jobRole, 'base-models/*');
    props.bucket.grantPut(this.jobRole, 'base-models/*');
    props.bucket.grantReadWrite(this.jobRole, 'models/*');
    // Status, progress and per-epoch checkpoints (jobs/<id>/checkpoint) for Spot retries.
    props.bucket.grantReadWrite(this.jobRole, 'jobs/*');
    // The embedding cache: a second job on the same images skips the base's forward pass.
    props.bucket.grantReadWrite(this.jobRole, 'cache/*');

    const image = ecs.ContainerImage.fromAsset(repoPath(), {
      file: 'infra/docker/train/Dockerfile',
      exclude: IMAGE_CONTEXT_EXCLUDE,
      ignoreMode: IgnoreMode.DOCKER,
    });
    this.jobDefinition = new batch.EcsJobDefinition(this, 'JobDefinition', {
      container: new batch.EcsEc2ContainerDefinition(this, 'Container', {
        image,
        gpu: 1,
        cpu: 4,
        // Fits a g4dn.xlarge (16 GiB) after the ECS agent's share.
        memory: Size.mebibytes(14_336),
        jobRole: this.jobRole,
        environment: { STORE_KIND: 's3', BUCKET_NAME: props.bucket.bucketName },
        logging: ecs.LogDriver.awsLogs({ streamPrefix: 'train', logRetention: logs.RetentionDays.ONE_MONTH }),
      }),
      retryAttempts: props.attempts ?? 3,
      retryStrategies: [
        // A reclaimed Spot instance says "Host EC2 (instance i-…) terminated.": run
        // again; the job resumes from its last checkpoint. Anything else is a real
        // failure that a retry would only repeat.
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
      timeout: props.jobTimeout ?? Duration.hours(4),
    });

    this.jobEventsFunction = new PlatformFunction(this, 'JobEventsFunction', {
      name: 'job-events',
      description: 'Records Batch job failures in jobs/<id>/status.json',
      environment: { STORE_KIND: 's3', BUCKET_NAME: props.bucket.bucketName },
    });
    props.bucket.grantReadWrite(this.jobEventsFunction, 'jobs/*');
    const eventsDeadLetterQueue = new sqs.Queue(this, 'JobEventsDeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.jobFailedRule = new events.Rule(this, 'JobFailedRule', {
      description: 'Batch jobs of this tenant that failed',
      eventPattern: {
        source: ['aws.batch'],
        detailType: ['Batch Job State Change'],
        detail: { jobQueue: [this.jobQueue.jobQueueArn], status: ['FAILED'] },
      },
      targets: [new targets.LambdaFunction(this.jobEventsFunction, { retryAttempts: 8, maxEventAge: Duration.hours(6), deadLetterQueue: eventsDeadLetterQueue })],
    });
  }

  /** Lets a function submit jobs to this queue with this definition (and see them, for the name check). */
  grantSubmit(grantee: iam.IGrantable): void {
    const stack = Stack.of(this);
    // A job definition is submitted by revision or by name; allow both forms.
    const definitionArn = stack.formatArn({ service: 'batch', resource: 'job-definition', resourceName: `${this.jobDefinition.jobDefinitionName}*` });
    iam.Grant.addToPrincipal({ grantee, actions: ['batch:SubmitJob'], resourceArns: [this.jobQueue.jobQueueArn, definitionArn] });
    // ListJobs and DescribeJobs support no resource-level permissions, so '*' is the
    // narrowest resource AWS accepts for them; they read job metadata, never data.
    iam.Grant.addToPrincipal({ grantee, actions: ['batch:ListJobs', 'batch:DescribeJobs'], resourceArns: ['*'] });
  }
}
