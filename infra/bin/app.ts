/**
 * The CDK app: one TenantStack per tenant, from `-c tenant=<id>[,<id>…]` and/or
 * tenants.json at the repository root. `cdk synth -c tenant=acme` runs offline.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { TenantStack } from '../lib/stacks/tenant-stack.js';
import { repoPath } from '../lib/paths.js';
import { loadTenants } from '../lib/tenants.js';

const app = new App();
// cdk-nag's AWS Solutions rules run at synthesis: a finding that is neither fixed nor
// acknowledged with a reason (Validations.of(construct).acknowledge) fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
const contextTenant = app.node.tryGetContext('tenant') as string | undefined;
const tenants = loadTenants({ contextTenant, file: repoPath('tenants.json') });
if (tenants.length === 0) throw new Error('no tenant: pass -c tenant=<id> or list tenants in tenants.json');

for (const tenant of tenants) {
  new TenantStack(app, `tl-${tenant.id}`, {
    tenant,
    description: `Transfer learning platform for tenant ${tenant.id}`,
    // Account and region come from the CLI profile at deploy time; synth needs neither.
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
}
app.synth();
