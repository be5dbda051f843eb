import { Duration, IgnoreMode, Size, Validations } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { repoPath } from '../paths.js';
import { grantPrefix } from '../s3-access.js';
import { PlatformFunction } from './platform-function.js';

export type TrainingCapacity = 'spot' | 'on-demand' | 'spot-then-on-demand';

export interface TrainingProps {
  bucket: s3.IBucket;
  /** The tenant, a key of every log line and a dimension of every metric the job writes (TL_TENANT). */
  tenantId?: string;
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
  /**
   * Time a job may wait in RUNNABLE for capacity (or for a compute environment that
   * fits it) before Batch cancels it. 10 minutes to 24 hours. @default 60 minutes
   */
  runnableTimeout?: Duration;
  /** Reserved concurrency of the job-events function. @default 2 */
  jobEventsConcurrency?: number;
}

/**
 * Why Batch cancels a job stuck in RUNNABLE: every reason `jobStateTimeLimitActions`
 * accepts. The job-events function reads the reason back from the FAILED event.
 */
const RUNNABLE_REASONS = [
  batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
  batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
  batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
];

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
 * Instances require IMDSv2 with a hop limit of 1, so a container (one hop further
 * away, on the ECS bridge network) cannot read the instance role's credentials; the
 * job gets its own role through the ECS task credentials endpoint instead.
 */
export class Training extends Construct {
  public readonly vpc: ec2.Vpc;
  public readonly computeEnvironments: batch.ManagedEc2EcsComputeEnvironment[];
  public readonly jobQueue: batch.JobQueue;
  public readonly jobDefinition: batch.EcsJobDefinition;
  public readonly jobRole: iam.Role;
  public readonly launchTemplate: ec2.LaunchTemplate;
  public readonly jobEventsFunction: PlatformFunction;
  /** Job-state events the job-events function could not handle (delivery or execution). */
  public readonly jobEventsDeadLetterQueue: sqs.Queue;
  public readonly jobFailedRule: events.Rule;

  constructor(scope: Construct, id: string, props: TrainingProps) {
    super(scope, id);
    ({ vpc: this.vpc, launchTemplate: this.launchTemplate, computeEnvironments: this.computeEnvironments } = createComputeEnvironments(this, props));
    const runnableTimeout = props.runnableTimeout ?? Duration.minutes(60);
    this.jobQueue = new batch.JobQueue(this, 'JobQueue', {
      computeEnvironments: this.computeEnvironments.map((computeEnvironment, i) => ({ computeEnvironment, order: i + 1 })),
      // Without this a job waits in RUNNABLE forever when no GPU Spot capacity comes;
      // cancelled, it fails, and the job-events function records NO_CAPACITY.
      jobStateTimeLimitActions: RUNNABLE_REASONS.map((reason) => ({
        action: batch.JobStateTimeLimitActionsAction.CANCEL,
        state: batch.JobStateTimeLimitActionsState.RUNNABLE,
        maxTime: runnableTimeout,
        reason,
      })),
    });

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Training job: the tenant bucket prefixes it reads and writes, nothing else',
    });
    grantPrefix(props.bucket, this.jobRole, 'prepared/', ['list', 'read']);
    grantPrefix(props.bucket, this.jobRole, 'base-models/', ['list', 'read', 'write']);
    grantPrefix(props.bucket, this.jobRole, 'models/', ['list', 'read', 'write', 'delete']);
    // Status, progress and per-epoch checkpoints (jobs/<id>/checkpoint) for Spot retries.
    grantPrefix(props.bucket, this.jobRole, 'jobs/', ['list', 'read', 'write', 'delete']);
    // The embedding cache: a second job on the same images skips the base's forward pass.
    grantPrefix(props.bucket, this.jobRole, 'cache/', ['list', 'read', 'write', 'delete']);

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
        environment: { STORE_KIND: 's3', BUCKET_NAME: props.bucket.bucketName, ...(props.tenantId ? { TL_TENANT: props.tenantId } : {}) },
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
    const executionRole = this.jobDefinition.container.executionRole;
    Validations.of(executionRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The ECS execution role pulls the training image: ecr:GetAuthorizationToken supports no resource-level permissions; the pull actions themselves name the image repository.',
    });

    // Events EventBridge could not deliver, and events the function failed on after
    // Lambda's own async retries: one queue, so one alarm covers both.
    this.jobEventsDeadLetterQueue = new sqs.Queue(this, 'JobEventsDeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.jobEventsDeadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        "This queue is itself a dead-letter queue: of the EventBridge target and the job-events function's on-failure destination (cdk-nag only recognises SQS redrive policies).",
    });
    this.jobEventsFunction = new PlatformFunction(this, 'JobEventsFunction', {
      name: 'job-events',
      description: 'Records Batch job failures in jobs/<id>/status.json',
      environment: { STORE_KIND: 's3', BUCKET_NAME: props.bucket.bucketName },
      reservedConcurrentExecutions: props.jobEventsConcurrency ?? 2,
      // EventBridge invokes asynchronously: after Lambda's two retries the event
      // would be dropped; it goes to the dead-letter queue (and its alarm) instead.
      onFailure: new destinations.SqsDestination(this.jobEventsDeadLetterQueue),
      retryAttempts: 2,
    });
    grantPrefix(props.bucket, this.jobEventsFunction, 'jobs/', ['read', 'write']);
    const eventsDeadLetterQueue = this.jobEventsDeadLetterQueue;
    this.jobFailedRule = new events.Rule(this, 'JobFailedRule', {
      description: 'Batch jobs of this tenant that failed',
      eventPattern: {
        source: ['aws.batch'],
        detailType: ['Batch Job State Change'],
        detail: { jobQueue: [this.jobQueue.jobQueueArn], status: ['FAILED'] },
      },
      targets: [
        new targets.LambdaFunction(this.jobEventsFunction, { retryAttempts: 8, maxEventAge: Duration.hours(6), deadLetterQueue: eventsDeadLetterQueue }),
      ],
    });
  }

  /** Lets a function submit jobs to this queue with this definition (and see them, for the name check). */
  grantSubmit(grantee: iam.IGrantable): void {
    // The runner submits the definition by its full ARN (with revision), the JOB_DEFINITION variable.
    iam.Grant.addToPrincipal({ grantee, actions: ['batch:SubmitJob'], resourceArns: [this.jobQueue.jobQueueArn, this.jobDefinition.jobDefinitionArn] });
    // ListJobs and DescribeJobs support no resource-level permissions, so '*' is the
    // narrowest resource AWS accepts for them; they read job metadata, never data.
    iam.Grant.addToPrincipal({ grantee, actions: ['batch:ListJobs', 'batch:DescribeJobs'], resourceArns: ['*'] });
    if (!(grantee.grantPrincipal instanceof iam.Role)) return;
    Validations.of(grantee.grantPrincipal).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'batch:ListJobs and batch:DescribeJobs support no resource-level permissions (Service Authorization Reference); they read job metadata of the account, never data.',
    });
  }
}

/**
 * The network and the GPU hosts: a VPC without NAT, a launch template that
 * hardens the instances, and one compute environment per capacity kind.
 */
function createComputeEnvironments(
  scope: Construct,
  props: TrainingProps,
): { vpc: ec2.Vpc; launchTemplate: ec2.LaunchTemplate; computeEnvironments: batch.ManagedEc2EcsComputeEnvironment[] } {
  const capacity = props.capacity ?? 'spot';
  const vpc = new ec2.Vpc(scope, 'Vpc', {
    maxAzs: 2,
    natGateways: 0,
    subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
    gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    // Rejected connection attempts to the instances are the signal worth keeping.
    flowLogs: {
      Rejected: {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(scope, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH })),
        trafficType: ec2.FlowLogTrafficType.REJECT,
      },
    },
  });
  const securityGroup = new ec2.SecurityGroup(scope, 'InstanceSecurityGroup', {
    vpc: vpc,
    description: 'Training instances: outbound only',
    allowAllOutbound: true,
  });

  const launchTemplate = new ec2.LaunchTemplate(scope, 'LaunchTemplate', {
    requireImdsv2: true,
    httpPutResponseHopLimit: 1,
    httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
    // The GPU AMI's root volume, encrypted; the image and the job's scratch live there.
    blockDevices: [{ deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(100, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }) }],
  });
  const instanceTypes = props.instanceTypes ?? ['g4dn.xlarge', 'g4dn.2xlarge', 'g5.xlarge', 'g5.2xlarge'].map((t) => new ec2.InstanceType(t));
  const environment = (envId: string, spot: boolean) =>
    new batch.ManagedEc2EcsComputeEnvironment(scope, envId, {
      vpc: vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroups: [securityGroup],
      instanceTypes,
      useOptimalInstanceClasses: false,
      spot,
      allocationStrategy: spot ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
      // No instance runs, and nothing is billed, while the queue is empty.
      minvCpus: 0,
      maxvCpus: props.maxvCpus ?? 16,
      // The ECS GPU-optimised Amazon Linux 2023 AMI (NVIDIA driver), pinned: Batch's
      // default for GPU types is the AL2 one, whose support ends before AL2023's.
      images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
      launchTemplate: launchTemplate,
    });
  const computeEnvironments =
    capacity === 'on-demand'
      ? [environment('OnDemandComputeEnvironment', false)]
      : capacity === 'spot'
        ? [environment('SpotComputeEnvironment', true)]
        : [environment('SpotComputeEnvironment', true), environment('OnDemandComputeEnvironment', false)];
  for (const ce of computeEnvironments) {
    Validations.of(ce).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
      reason:
        'The instance role of Batch GPU hosts runs the ECS agent; AWS maintains this managed policy as the agent gains actions. Jobs never use it: IMDSv2 with hop limit 1 keeps containers away from it, and they run as the job role.',
    });
  }
  return { vpc, launchTemplate, computeEnvironments };
}
