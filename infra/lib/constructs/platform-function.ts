import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, type NodejsFunctionProps } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ESM_BANNER, EXTERNAL_MODULES, NODE_TARGET } from '../bundling.js';
import { repoPath } from '../paths.js';

/** The Lambda runtime of every platform function: the newest Node.js line aws-cdk-lib offers. */
export const FUNCTION_RUNTIME = lambda.Runtime.NODEJS_24_X;

export interface PlatformFunctionProps extends Omit<NodejsFunctionProps, 'entry' | 'runtime' | 'bundling' | 'role' | 'logGroup'> {
  /** `functions/<name>/handler.ts`, export `handler`. */
  name: string;
}

/**
 * A platform Lambda function: Node.js 24 on x86_64 (the ml-runtime layer holds
 * x64 binaries), bundled locally by esbuild (no Docker) with the settings in
 * infra/lib/bundling.ts, JSON logs kept for a month.
 *
 * Its role is its own and starts empty but for writing to its own log group:
 * the AWS managed AWSLambdaBasicExecutionRole would let it create log groups and
 * write to any of them in the account.
 */
export class PlatformFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: PlatformFunctionProps) {
    const { name, ...rest } = props;
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: logs.RetentionDays.ONE_MONTH });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs the ${name} function`,
    });
    // CreateLogStream and PutLogEvents on this function's log group only.
    logGroup.grantWrite(role);
    super(scope, id, {
      runtime: FUNCTION_RUNTIME,
      architecture: lambda.Architecture.X86_64,
      memorySize: 512,
      timeout: Duration.seconds(30),
      loggingFormat: lambda.LoggingFormat.JSON,
      // X-Ray traces each invocation (and, through the API stage, each request end to end).
      tracing: lambda.Tracing.ACTIVE,
      ...rest,
      role,
      logGroup,
      entry: repoPath('functions', name, 'handler.ts'),
      handler: 'handler',
      depsLockFilePath: repoPath('package-lock.json'),
      projectRoot: repoPath(),
      bundling: {
        format: OutputFormat.ESM,
        target: NODE_TARGET,
        mainFields: ['module', 'main'],
        banner: ESM_BANNER,
        externalModules: EXTERNAL_MODULES,
        minify: true,
        sourceMap: false,
        forceDockerBundling: false,
      },
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions (Service Authorization Reference).',
    });
  }
}
