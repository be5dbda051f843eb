import { Duration } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, type NodejsFunctionProps } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ESM_BANNER, EXTERNAL_MODULES, NODE_TARGET } from '../bundling.js';
import { repoPath } from '../paths.js';

export interface PlatformFunctionProps extends Omit<NodejsFunctionProps, 'entry' | 'runtime' | 'bundling'> {
  /** `functions/<name>/handler.ts`, export `handler`. */
  name: string;
}

/**
 * A platform Lambda function: Node.js 22 on x86_64 (the ml-runtime layer holds
 * x64 binaries), bundled locally by esbuild (no Docker) with the settings in
 * infra/lib/bundling.ts, JSON logs kept for a month.
 */
export class PlatformFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: PlatformFunctionProps) {
    const { name, ...rest } = props;
    super(scope, id, {
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.X86_64,
      memorySize: 512,
      timeout: Duration.seconds(30),
      loggingFormat: lambda.LoggingFormat.JSON,
      logGroup: new logs.LogGroup(scope, `${id}Logs`, { retention: logs.RetentionDays.ONE_MONTH }),
      ...rest,
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
  }
}
