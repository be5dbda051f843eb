/**
 * Prints cdk-nag AwsSolutions findings per tenant stack, without bundling (seconds,
 * not minutes): `node --import tsx infra/scripts/nag-report.ts [tenant...]`.
 * `cdk synth` runs the same checks and fails on any finding; this script lists them
 * all at once, with the acknowledgements in force, for review.
 */
import { readFileSync } from 'node:fs';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { repoPath } from '../lib/paths.js';
import { TenantStack } from '../lib/stacks/tenant-stack.js';
import { TenantConfigSchema } from '../lib/tenants.js';

const ids = process.argv.slice(2).length ? process.argv.slice(2) : ['acme', 'globex'];
const { context } = JSON.parse(readFileSync(repoPath('cdk.json'), 'utf8')) as { context: Record<string, unknown> };
const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
const stacks = ids.map((id) => new TenantStack(app, `tl-${id}`, { tenant: TenantConfigSchema.parse({ id }) }));
let total = 0;
for (const stack of stacks) {
  const report = new AwsSolutionsChecks(app).validateScope(stack);
  const findings = report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath ?? r.resourceLogicalId}`));
  const acknowledged = stack.node
    .findAll()
    .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).flatMap((m) => Object.keys(m.data as object)))
    .filter((id) => id.includes('AwsSolutions-'));
  for (const f of findings) console.log(`${stack.stackName}: ${f}`);
  console.log(`${stack.stackName}: ${findings.length} unacknowledged finding(s), ${acknowledged.length} acknowledgement(s) with reasons`);
  total += findings.length;
}
process.exitCode = total === 0 ? 0 : 1;
