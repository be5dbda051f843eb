/**
 * How every Lambda function is bundled, shared by the CDK constructs and by
 * the bundle-size script so that what is measured is what is deployed.
 */

/**
 * Syntax level of the bundles. The functions run on Lambda's nodejs24.x
 * (see FUNCTION_RUNTIME); node20 output runs there, and on the
 * Node 20 the repository supports, where the bundle-size script imports it.
 */
export const NODE_TARGET = 'node20';

/**
 * Packages left out of the bundle. `sharp` loads a native addon esbuild cannot
 * inline, so it ships in the ml-runtime layer. The native tfjs packages are
 * imported by name at run time by shared/tf/loader.ts; they are not installed
 * on Lambda, so the loader falls back to the wasm backend, which is bundled.
 * The AWS SDK is bundled (not taken from the runtime) so the deployed code runs
 * the SDK version that the tests ran.
 */
export const EXTERNAL_MODULES = ['sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];

/**
 * ESM output (the code uses `import.meta.url`), with the CommonJS globals that
 * bundled CommonJS code expects: `require` for Node built-ins, and `__dirname`,
 * which the tfjs wasm backend's Emscripten loader reads on Node (without it the
 * backend fails to initialise: measured with infra/scripts/measure-bundle.ts).
 * They are set on globalThis rather than declared, because bundled modules
 * declare their own `require` (createRequire) and a second declaration would
 * not parse.
 */
export const ESM_BANNER = [
  "import { createRequire as __tlCreateRequire } from 'node:module';",
  "import { fileURLToPath as __tlFileURLToPath } from 'node:url';",
  "import { dirname as __tlDirname } from 'node:path';",
  'globalThis.require ??= __tlCreateRequire(import.meta.url);',
  'globalThis.__filename ??= __tlFileURLToPath(import.meta.url);',
  'globalThis.__dirname ??= __tlDirname(globalThis.__filename);',
].join(' ');

/** Lambda's limit on a function's unzipped code plus its layers. */
export const LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024;
