import { App, Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { synthTenants } from './synth.js';

/** Every acknowledgement recorded on the constructs of a tree. */
function acknowledgementsOf(root: IConstruct): { path: string; id: string; reason: string }[] {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      // Recorded as { "<qualified rule id>": "<reason>" }.
      .flatMap((m) => Object.entries(m.data as Record<string, string>))
      .map(([id, reason]) => ({ path: c.node.path, id: id.replace(/^Annotation::/, ''), reason }))
      // CDK's own acknowledgements of its template checks are not ours to argue.
      .filter((a) => a.id.startsWith('AwsSolutions-')),
  );
}

describe('cdk-nag AwsSolutions', () => {
  const { app, stacks } = synthTenants([
    { id: 'acme' },
    { id: 'globex', capacity: 'spot-then-on-demand', alarmEmail: 'ops@globex.example', destroyData: true },
  ]);

  it.each(stacks.map((s) => [s.stackName, s] as const))('%s has no unacknowledged finding', (_name, stack) => {
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    const findings = report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath ?? r.resourceLogicalId}`));

    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('acknowledges only specific findings, each with a reason of substance', () => {
    const acks = stacks.flatMap((s) => acknowledgementsOf(s));

    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      expect(a.reason.length, `${a.id} at ${a.path}`).toBeGreaterThanOrEqual(60);
      // IAM5 findings are acknowledged one wildcard at a time, never as a whole rule.
      if (a.id.startsWith('AwsSolutions-IAM5')) expect(a.id, a.path).toMatch(/^AwsSolutions-IAM5\[Resource::/);
    }
    // The rules acknowledged at all: anything new must be fixed or argued here.
    expect(new Set(acks.map((a) => a.id.replace(/\[.*$/, '')))).toEqual(
      new Set([
        'AwsSolutions-S1',
        'AwsSolutions-IAM4',
        'AwsSolutions-IAM5',
        'AwsSolutions-SQS3',
        'AwsSolutions-APIG3',
        'AwsSolutions-APIG4',
        'AwsSolutions-COG4',
        // The dashboard's distribution (geo restriction, WAF, TLS policy of the default
        // certificate) and CDK's BucketDeployment handler runtime: infra/lib/constructs/dashboard.ts.
        'AwsSolutions-CFR1',
        'AwsSolutions-CFR2',
        'AwsSolutions-CFR4',
        'AwsSolutions-L1',
      ]),
    );
  });

  it('is wired into the CDK app, so `cdk synth` fails on a finding', async () => {
    const { readFile } = await import('node:fs/promises');
    const source = await readFile(new URL('../../infra/bin/app.ts', import.meta.url), 'utf8');

    expect(source).toMatch(/Validations\.of\(app\)\.addPlugins\(new AwsSolutionsChecks\(app\)\)/);
  });

  it('fails synthesis on an unacknowledged finding, and not once it is acknowledged', () => {
    const build = (acknowledge: boolean) => {
      const probe = new App();
      Validations.of(probe).addPlugins(new AwsSolutionsChecks(probe));
      // A queue without a DLQ and without TLS enforcement: SQS3 and SQS4.
      const queue = new sqs.Queue(new Stack(probe, 'Probe'), 'Queue', { enforceSSL: true });
      if (acknowledge) Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'probe of the synthesis-time check in this test only' });
      return () => probe.synth();
    };

    expect(build(false)).toThrow(/AwsSolutions-SQS3/);
    expect(build(true)).not.toThrow();
  });
});
