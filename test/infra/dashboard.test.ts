import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDashboardInto } from '../../dashboard/build.js';
import { DASHBOARD_HEADERS } from '../../shared/local/server.js';
import { synthTenants } from './synth.js';

type Resource = { Type: string; Properties?: Record<string, any>; DependsOn?: string | string[] };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Principal?: unknown; Condition?: unknown };

const idsOf = (template: Template, type: string) => Object.keys(template.findResources(type));
const oneIdOf = (template: Template, type: string, prefix = '') => {
  const ids = idsOf(template, type).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} ${prefix}, found ${ids.length}`);
  return ids[0];
};

/** An Fn::Join of literals and intrinsics as one string, intrinsics written `{X}` (Ref) / `{X.Attr}` (Fn::GetAtt). */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  if (v['Fn::Join']) return (v['Fn::Join'][1] as unknown[]).map(flatten).join(v['Fn::Join'][0] as string);
  if (v.Ref) return `{${v.Ref}}`;
  if (v['Fn::GetAtt']) return `{${(v['Fn::GetAtt'] as string[]).join('.')}}`;
  return JSON.stringify(value);
}

/** `directive -> sources` of a Content-Security-Policy. */
const directives = (csp: string) =>
  new Map(
    csp
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .map(([name, ...sources]) => [name, sources] as const),
  );

/** Every logical id a value refers to (Ref, Fn::GetAtt, Fn::Sub `${X}`). */
function refsIn(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, into);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'Ref' && typeof v === 'string') into.add(v);
      else if (k === 'Fn::GetAtt') into.add((v as string[])[0]);
      else if (k === 'Fn::Sub' && typeof v === 'string') for (const m of v.matchAll(/\$\{([^.}]+)/g)) into.add(m[1]);
      else refsIn(v, into);
    }
  }
  return into;
}

describe('Dashboard on AWS', () => {
  let template: Template;
  let resources: Record<string, Resource>;
  let outdir: string;
  let distributionId: string;
  let dashboardOrigin: string;

  beforeAll(() => {
    const { app, templates } = synthTenants([{ id: 'acme' }]);
    template = templates[0];
    outdir = app.outdir;
    resources = (template.toJSON() as { Resources: Record<string, Resource> }).Resources;
    distributionId = oneIdOf(template, 'AWS::CloudFront::Distribution');
    dashboardOrigin = `https://{${distributionId}.DomainName}`;
  });

  describe('CloudFront in front of a private bucket', () => {
    it('reaches the bucket through origin access control, never an OAI or a public bucket', () => {
      const oacId = oneIdOf(template, 'AWS::CloudFront::OriginAccessControl');
      const bucketId = oneIdOf(template, 'AWS::S3::Bucket', 'DashboardBucket');

      template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
        OriginAccessControlConfig: { OriginAccessControlOriginType: 's3', SigningBehavior: 'always', SigningProtocol: 'sigv4' },
      });
      template.hasResourceProperties('AWS::CloudFront::Distribution', {
        DistributionConfig: Match.objectLike({
          DefaultRootObject: 'index.html',
          Origins: [
            Match.objectLike({
              DomainName: { 'Fn::GetAtt': [bucketId, 'RegionalDomainName'] },
              OriginAccessControlId: { 'Fn::GetAtt': [oacId, 'Id'] },
              S3OriginConfig: { OriginAccessIdentity: '' },
            }),
          ],
          DefaultCacheBehavior: Match.objectLike({ ViewerProtocolPolicy: 'redirect-to-https', AllowedMethods: ['GET', 'HEAD'] }),
          Logging: Match.objectLike({ Bucket: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DashboardCloudFrontLogsBucket'), 'RegionalDomainName'] } }),
        }),
      });
    });

    it('keeps the bucket private: public access blocked, TLS only, readable by this distribution alone', () => {
      const bucketId = oneIdOf(template, 'AWS::S3::Bucket', 'DashboardBucket');
      const bucket = resources[bucketId].Properties!;
      const policy = Object.values(resources).find((r) => r.Type === 'AWS::S3::BucketPolicy' && r.Properties!.Bucket.Ref === bucketId)!;
      const statements = policy.Properties!.PolicyDocument.Statement as Statement[];
      const allows = statements.filter((s) => s.Effect === 'Allow');

      expect(bucket.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.WebsiteConfiguration).toBeUndefined();
      expect(bucket.LoggingConfiguration).toMatchObject({ LogFilePrefix: 'dashboard-bucket/' });
      expect(statements).toContainEqual(expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }));
      expect(allows).toHaveLength(1);
      expect(allows[0]).toMatchObject({ Action: 's3:GetObject', Principal: { Service: 'cloudfront.amazonaws.com' } });
      expect(flatten((allows[0].Condition as { StringEquals: { 'AWS:SourceArn': unknown } }).StringEquals['AWS:SourceArn'])).toMatch(
        new RegExp(`:distribution/\\{${distributionId}\\}$`),
      );
    });
  });

  describe('security headers', () => {
    let csp: Map<string, readonly string[]>;
    beforeAll(() => {
      const policy = Object.values(resources).find((r) => r.Type === 'AWS::CloudFront::ResponseHeadersPolicy')!;
      csp = directives(flatten(policy.Properties!.ResponseHeadersPolicyConfig.SecurityHeadersConfig.ContentSecurityPolicy.ContentSecurityPolicy));
    });

    it('sends every file with a CSP that allows no inline or evaluated script', () => {
      const policyId = oneIdOf(template, 'AWS::CloudFront::ResponseHeadersPolicy');

      expect(csp.get('script-src')).toEqual(["'self'"]);
      expect(csp.get('default-src')).toEqual(["'none'"]);
      expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
      for (const [name, sources] of csp) {
        expect(sources, name).not.toContain("'unsafe-inline'");
        expect(sources, name).not.toContain("'unsafe-eval'");
        expect(sources, name).not.toContain('*');
      }
      template.hasResourceProperties('AWS::CloudFront::Distribution', {
        DistributionConfig: Match.objectLike({ DefaultCacheBehavior: Match.objectLike({ ResponseHeadersPolicyId: { Ref: policyId } }) }),
      });
    });

    it('is the embedded platform policy, with the API and the S3 upload endpoint added to connect-src', () => {
      const apiId = oneIdOf(template, 'AWS::ApiGateway::RestApi');
      const local = directives(DASHBOARD_HEADERS['content-security-policy']);

      for (const [name, sources] of local) if (name !== 'connect-src') expect(csp.get(name), name).toEqual(sources);
      expect(csp.get('connect-src')).toEqual([
        "'self'",
        `https://{${apiId}}.execute-api.{AWS::Region}.{AWS::URLSuffix}`,
        'https://*.s3.{AWS::Region}.{AWS::URLSuffix}',
      ]);
    });

    it('sends the other headers the embedded platform sends, and HSTS', () => {
      template.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
        ResponseHeadersPolicyConfig: Match.objectLike({
          SecurityHeadersConfig: Match.objectLike({
            ContentTypeOptions: { Override: true },
            FrameOptions: { FrameOption: 'DENY', Override: true },
            ReferrerPolicy: { ReferrerPolicy: DASHBOARD_HEADERS['referrer-policy'], Override: true },
            StrictTransportSecurity: Match.objectLike({ AccessControlMaxAgeSec: 31536000 }),
          }),
          CustomHeadersConfig: { Items: [{ Header: 'Cache-Control', Value: DASHBOARD_HEADERS['cache-control'], Override: true }] },
        }),
      });
    });
  });

  describe('deployment of the bundle', () => {
    it('copies the bundle and a config.json naming the API into the bucket, pruning, and invalidates the distribution', () => {
      const deployment = Object.values(resources).find((r) => r.Type === 'Custom::CDKBucketDeployment')!.Properties!;
      const apiId = oneIdOf(template, 'AWS::ApiGateway::RestApi');
      const stageId = oneIdOf(template, 'AWS::ApiGateway::Stage');
      const configIndex = (deployment.SourceMarkers as Record<string, unknown>[]).findIndex((m) => Object.keys(m).length > 0);
      const configZip = (deployment.SourceObjectKeys as string[])[configIndex];
      const configDir = path.join(outdir, `asset.${configZip.replace(/\.zip$/, '')}`);
      const markers = deployment.SourceMarkers[configIndex] as Record<string, unknown>;

      expect(deployment).toMatchObject({
        DestinationBucketName: { Ref: oneIdOf(template, 'AWS::S3::Bucket', 'DashboardBucket') },
        DistributionId: { Ref: distributionId },
        DistributionPaths: ['/*'],
        Prune: true,
        RetainOnDelete: false,
      });
      expect(deployment.SourceObjectKeys).toHaveLength(2);
      // config.json, with the API's URL filled in at deploy time: https://<api id>.execute-api.<region>.<suffix>/<stage>/
      const config = JSON.parse(readFileSync(path.join(configDir, 'config.json'), 'utf8')) as { apiUrl: string };
      const apiUrl = config.apiUrl.replace(/<<marker:0xbaba:(\d+)>>/g, (_m, i: string) => flatten(markers[`<<marker:0xbaba:${i}>>`]));
      expect(apiUrl).toBe(`https://{${apiId}}.execute-api.{AWS::Region}.{AWS::URLSuffix}/{${stageId}}/`);
    });

    it('runs with a role that reads the two source objects, writes the dashboard bucket and invalidates this distribution only', () => {
      const fn = resources[oneIdOf(template, 'AWS::Lambda::Function', 'CustomCDKBucketDeployment')];
      const roleId = (fn.Properties!.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
      const bucketId = oneIdOf(template, 'AWS::S3::Bucket', 'DashboardBucket');
      const statements = Object.values(resources)
        .filter((r) => r.Type === 'AWS::IAM::Policy' && (r.Properties!.Roles as { Ref: string }[]).some((x) => x.Ref === roleId))
        .flatMap((r) => r.Properties!.PolicyDocument.Statement as Statement[]);
      const grants = statements.flatMap((s) =>
        (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map((res) => ({ actions: [s.Action].flat().sort().join(), resource: flatten(res) })),
      );

      expect(roleId).toMatch(/^DashboardDeploymentRole/);
      expect(resources[roleId].Properties!.ManagedPolicyArns).toBeUndefined();
      expect(grants.filter((g) => g.actions === 's3:GetObject').map((g) => g.resource)).toEqual([
        expect.stringMatching(/^arn:\{AWS::Partition\}:s3:::.*\/[0-9a-f]{64}\.zip$/),
        expect.stringMatching(/^arn:\{AWS::Partition\}:s3:::.*\/[0-9a-f]{64}\.zip$/),
      ]);
      expect(grants.filter((g) => g.actions.startsWith('s3:') && g.actions !== 's3:GetObject')).toEqual([
        { actions: 's3:ListBucket', resource: `{${bucketId}.Arn}` },
        { actions: 's3:DeleteObject,s3:PutObject', resource: `{${bucketId}.Arn}/*` },
      ]);
      expect(grants.filter((g) => g.actions.startsWith('cloudfront:'))).toEqual([
        {
          actions: 'cloudfront:CreateInvalidation,cloudfront:GetInvalidation',
          resource: expect.stringMatching(new RegExp(`:distribution/\\{${distributionId}\\}$`)),
        },
      ]);
      for (const s of statements) expect([s.Action].flat().join(), JSON.stringify(s.Action)).not.toMatch(/\*/);
    });

    it('builds a self-contained bundle: index.html loads one script and one stylesheet from its own origin, no inline script', () => {
      const out = mkdtempSync(path.join(tmpdir(), 'tl-dashboard-'));
      try {
        buildDashboardInto(out);
        const html = readFileSync(path.join(out, 'index.html'), 'utf8');

        expect(existsSync(path.join(out, 'assets/app.js'))).toBe(true);
        expect(existsSync(path.join(out, 'assets/app.css'))).toBe(true);
        expect([...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)].map((m) => [m[1].trim(), m[2].trim()])).toEqual([
          ['type="module" src="assets/app.js"', ''],
        ]);
        expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });
  });

  describe('CORS: the dashboard origin only', () => {
    it('answers preflights on every route for the dashboard origin, never *', () => {
      const methods = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGateway::Method');
      const options = methods.filter((m) => m.Properties!.HttpMethod === 'OPTIONS');
      const routed = new Set(methods.filter((m) => m.Properties!.HttpMethod !== 'OPTIONS').map((m) => JSON.stringify(m.Properties!.ResourceId)));

      for (const resource of routed) expect(options.map((m) => JSON.stringify(m.Properties!.ResourceId))).toContain(resource);
      for (const m of options) {
        const headers = m.Properties!.Integration.IntegrationResponses[0].ResponseParameters as Record<string, unknown>;
        expect(m.Properties).toMatchObject({ AuthorizationType: 'NONE', ApiKeyRequired: false });
        expect(flatten(headers['method.response.header.Access-Control-Allow-Origin'])).toBe(`'${dashboardOrigin}'`);
        expect(headers['method.response.header.Access-Control-Allow-Headers']).toBe("'content-type,x-api-key'");
      }
    });

    it("makes the functions' answers and API Gateway's own errors readable by the dashboard origin", () => {
      for (const prefix of ['InferencePredictFunction', 'InferenceUploadsFunction']) {
        const fn = resources[oneIdOf(template, 'AWS::Lambda::Function', prefix)];
        expect(flatten(fn.Properties!.Environment.Variables.TL_ALLOWED_ORIGIN), prefix).toBe(dashboardOrigin);
      }
      const responses = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGateway::GatewayResponse');
      expect(responses.length).toBeGreaterThan(0);
      for (const r of responses)
        expect(flatten(r.Properties!.ResponseParameters['gatewayresponse.header.Access-Control-Allow-Origin']), r.Properties!.ResponseType).toBe(
          `'${dashboardOrigin}'`,
        );
    });

    it('lets the dashboard origin PUT presigned uploads to the tenant bucket, and nothing else', () => {
      const bucket = resources[oneIdOf(template, 'AWS::S3::Bucket', 'IngestBucket')].Properties!;
      const rules = bucket.CorsConfiguration.CorsRules as { AllowedMethods: string[]; AllowedOrigins: unknown[]; AllowedHeaders: string[] }[];

      expect(rules).toHaveLength(1);
      expect(rules[0].AllowedMethods).toEqual(['PUT']);
      expect(rules[0].AllowedOrigins.map(flatten)).toEqual([dashboardOrigin]);
      expect(rules[0].AllowedHeaders).toEqual(['content-type']);
    });
  });

  it('has no dependency cycle (the API and the dashboard name each other)', () => {
    // CloudFormation refuses a template with a cycle; no deploy runs here, so check it.
    const edges = new Map(
      Object.entries(resources).map(([id, r]) => [
        id,
        [...refsIn(r.Properties), ...[r.DependsOn ?? []].flat()].filter((dep) => dep in resources && dep !== id),
      ]),
    );
    const state = new Map<string, 'visiting' | 'done'>();
    const cycle: string[] = [];
    const visit = (id: string, trail: string[]): boolean => {
      if (state.get(id) === 'done') return false;
      if (state.get(id) === 'visiting') return cycle.push(...trail.slice(trail.indexOf(id)), id) > 0;
      state.set(id, 'visiting');
      for (const dep of edges.get(id)!) if (visit(dep, [...trail, id])) return true;
      state.set(id, 'done');
      return false;
    };

    for (const id of edges.keys()) if (visit(id, [])) break;

    expect(cycle).toEqual([]);
  });
});
