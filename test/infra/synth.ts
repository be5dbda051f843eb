import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { repoPath } from '../../infra/lib/paths.js';
import { Template } from 'aws-cdk-lib/assertions';
import { TenantStack } from '../../infra/lib/stacks/tenant-stack.js';
import { TenantConfigSchema, type TenantConfig } from '../../infra/lib/tenants.js';

/**
 * Synthesises tenant stacks for assertions. Bundling is skipped (the
 * `aws:cdk:bundling-stacks` context names no stack), so no esbuild run or layer
 * build happens here; `cdk synth` itself does both and is timed in the docs.
 * The feature flags of cdk.json apply, as they do for `cdk synth`.
 */
export function synthTenants(tenants: Array<Partial<TenantConfig> & { id: string }>): { app: App; stacks: TenantStack[]; templates: Template[] } {
  const app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
  const stacks = tenants.map((t) => new TenantStack(app, `tl-${t.id}`, { tenant: TenantConfigSchema.parse(t) }));
  return { app, stacks, templates: stacks.map((s) => Template.fromStack(s)) };
}

/** The `context` of cdk.json: feature flags that change what constructs synthesise. */
export function cdkJsonContext(): Record<string, unknown> {
  return (JSON.parse(readFileSync(repoPath('cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;
}
