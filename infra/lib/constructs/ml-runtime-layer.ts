import { AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { buildMlRuntimeLayer } from '../../../layers/ml-runtime/build.js';
import { repoPath } from '../paths.js';

/**
 * The ml-runtime layer (sharp's native binaries, the tfjs wasm binaries, the
 * default base model's files), built at synth time by layers/ml-runtime/build.ts
 * from the local node_modules: offline, and without Docker.
 */
export class MlRuntimeLayer extends Construct {
  public readonly layer: lambda.LayerVersion;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.layer = new lambda.LayerVersion(this, 'Layer', {
      description: 'sharp (linux-x64), tfjs wasm binaries, MobileNetV2 base model files',
      compatibleRuntimes: [lambda.Runtime.NODEJS_24_X],
      compatibleArchitectures: [lambda.Architecture.X86_64],
      code: lambda.Code.fromAsset(repoPath('layers', 'ml-runtime'), {
        // The content comes from node_modules, outside the source folder: hash what was built.
        assetHashType: AssetHashType.OUTPUT,
        bundling: {
          // Never pulled: local bundling always succeeds or throws.
          image: DockerImage.fromRegistry('public.ecr.aws/sam/build-nodejs20.x'),
          local: {
            tryBundle(outputDir: string) {
              buildMlRuntimeLayer({ outDir: outputDir });
              return true;
            },
          },
        },
      }),
    });
  }
}
