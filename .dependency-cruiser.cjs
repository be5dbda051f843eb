/**
 * Structure rules checked by `npm run lint:structure` (dependency-cruiser), part of `npm test`.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-runtime-cycle',
      severity: 'error',
      comment:
        'A runtime import cycle works only while every cross-import is used inside function bodies; one top-level use turns it into a load-order crash. Type-only imports are erased and may form cycles.',
      from: { pathNot: '^test/' },
      to: { circular: true, dependencyTypesNot: ['type-only'], viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'shared-does-not-import-functions',
      severity: 'error',
      comment:
        'shared/ holds what the functions are made of; it must not depend on them. The one exception is shared/local/platform.ts: the composition root of the embedded platform, which runs the very handlers of functions/ in one process (ARCHITECTURE.md, "Layers").',
      from: { path: '^shared/', pathNot: '^shared/local/platform\\.ts$' },
      to: { path: '^functions/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|cdk\\.out|\\.data)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.json'],
    },
  },
};
