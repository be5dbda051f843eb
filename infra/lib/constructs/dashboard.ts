import { AssetHashType, DockerImage, Duration, RemovalPolicy, Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import { S3BucketOrigin } from 'aws-cdk-lib/aws-cloudfront-origins';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { buildDashboardInto } from '../../../dashboard/build.js';
import { DASHBOARD_OTHER_HEADERS, dashboardCsp } from '../../../shared/http/dashboard-headers.js';
import { repoPath } from '../paths.js';

export interface DashboardProps {
  /** The tenant's API: the page calls it (config.json, CSP connect-src). */
  api: apigw.RestApi;
  /** The bucket presigned uploads go to: it gets a CORS rule for this dashboard's origin, PUT only. */
  uploadBucket: s3.Bucket;
  /** Where the dashboard bucket's server access logs go (the tenant's access-log bucket). */
  accessLogsBucket: s3.IBucket;
  /** Delete the CloudFront log bucket and its logs with the stack. @default false */
  destroyData?: boolean;
}

/**
 * The web dashboard of one tenant: the esbuild bundle of dashboard/ in a private
 * bucket of its own, served by CloudFront through origin access control, with the
 * same Content-Security-Policy and security headers as the embedded platform, and a
 * `config.json` that tells the page where the API is. Its origin is the only one the
 * API's CORS and the upload bucket's CORS let in (see TenantStack).
 *
 * A bucket of its own rather than a prefix of the tenant bucket: the deployment
 * function replaces (and prunes) every object it serves, and CloudFront may read
 * every object it serves; kept apart, neither can ever reach a dataset or a model.
 */
export class Dashboard extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly distribution: cloudfront.Distribution;
  /** CloudFront's standard logs: one line per request for a dashboard file. */
  public readonly logsBucket: s3.Bucket;
  public readonly responseHeadersPolicy: cloudfront.ResponseHeadersPolicy;
  public readonly deployment: s3deploy.BucketDeployment;
  /** `https://<distribution domain>`: the one origin the API answers browsers from. */
  public readonly origin: string;
  /** The Content-Security-Policy every file is served with. */
  public readonly contentSecurityPolicy: string;

  constructor(scope: Construct, id: string, props: DashboardProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: 'dashboard-bucket/',
      // Build output, rebuilt from the repository at every deploy: the deployment
      // empties it on stack deletion (retainOnDelete: false), so it can go too.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.logsBucket = new s3.Bucket(this, 'CloudFrontLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // CloudFront's standard logs are delivered with an ACL grant: the bucket must accept ACLs.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      removalPolicy: props.destroyData ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      autoDeleteObjects: props.destroyData ?? false,
      lifecycleRules: [{ id: 'ExpireCloudFrontLogs', expiration: Duration.days(365) }],
    });
    Validations.of(this.logsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: "This bucket holds CloudFront's request logs of the dashboard; logging the log bucket would only log the log delivery itself.",
    });

    // The API's origin, not its URL: the URL names the stage, and the stage depends on
    // the API's OPTIONS methods, which name this distribution's domain (a cycle).
    const apiOrigin = `https://${props.api.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}`;
    // Presigned upload URLs point at the tenant bucket's regional endpoint. Its name
    // cannot appear here: the bucket's CORS rule names this distribution, and the
    // distribution would name the bucket (a cycle). The region's S3 endpoints it is.
    const uploadOrigin = `https://*.s3.${stack.region}.${stack.urlSuffix}`;
    this.contentSecurityPolicy = dashboardCsp({ connectSrc: [apiOrigin, uploadOrigin] });

    this.responseHeadersPolicy = new cloudfront.ResponseHeadersPolicy(this, 'Headers', {
      comment: 'Dashboard: CSP without inline script, nosniff, no referrer, no framing, HSTS',
      securityHeadersBehavior: {
        contentSecurityPolicy: { contentSecurityPolicy: this.contentSecurityPolicy, override: true },
        contentTypeOptions: { override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), includeSubdomains: true, override: true },
      },
      customHeadersBehavior: {
        customHeaders: [{ header: 'Cache-Control', value: DASHBOARD_OTHER_HEADERS['cache-control'], override: true }],
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'Transfer-learning platform dashboard',
      defaultRootObject: 'index.html',
      defaultBehavior: {
        origin: S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: this.responseHeadersPolicy,
        compress: true,
      },
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      // Edge locations in North America and Europe: the cheapest class; a few static files per visit.
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket: this.logsBucket,
      logFilePrefix: 'dashboard/',
    });
    this.origin = `https://${this.distribution.distributionDomainName}`;
    acknowledgeDistributionFindings(this.distribution);

    this.deployment = this.deploy(props.api);

    // Browsers PUT to presigned URLs from this origin only; the signature authorises, CORS lets the page see the answer.
    props.uploadBucket.addCorsRule({
      allowedMethods: [s3.HttpMethods.PUT],
      allowedOrigins: [this.origin],
      allowedHeaders: ['content-type'],
      maxAge: 3600,
    });
  }

  /**
   * Copies the bundle and config.json into the bucket and invalidates the
   * distribution, on every deploy. CDK's BucketDeployment, with a role of our own:
   * the one CDK would make carries the managed basic-execution policy and wildcard
   * grants (s3:GetObject*, s3:DeleteObject*, every asset in the account's staging
   * bucket, invalidations of any distribution). This one reads the two source
   * objects, writes this bucket and invalidates this distribution.
   */
  private deploy(api: apigw.RestApi): s3deploy.BucketDeployment {
    const logGroup = new logs.LogGroup(this, 'DeploymentLogs', { retention: logs.RetentionDays.ONE_MONTH });
    const role = new iam.Role(this, 'DeploymentRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Copies the dashboard bundle into its bucket at deploy time',
    });
    logGroup.grantWrite(role);
    // CDK's own grants go nowhere: the statements below are the whole policy.
    const fixedRole = role.withoutPolicyUpdates();
    const sources = [
      s3deploy.Source.asset(repoPath('dashboard'), {
        // What is deployed is the bundle (dependencies included): hash what was built.
        assetHashType: AssetHashType.OUTPUT,
        bundling: {
          // Never pulled: local bundling always succeeds or throws.
          image: DockerImage.fromRegistry('public.ecr.aws/sam/build-nodejs20.x'),
          local: {
            tryBundle(outputDir: string) {
              buildDashboardInto(outputDir);
              return true;
            },
          },
        },
      }),
      // Read by the page at start (dashboard/src/main.tsx); the embedded platform has none.
      s3deploy.Source.jsonData('config.json', { apiUrl: api.url }),
    ].map((source) => source.bind(this, { handlerRole: fixedRole }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: sources.map((s) => s.bucket.arnForObjects(s.zipObjectKey)) }));
    // `aws s3 sync --delete`: list, put, and prune what the new bundle no longer has.
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:DeleteObject'], resources: [this.bucket.arnForObjects('*')] }));
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['cloudfront:CreateInvalidation', 'cloudfront:GetInvalidation'], resources: [this.distribution.distributionArn] }),
    );
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalIdOf(this.bucket)}.Arn>/*]`,
      reason: 'The deployment replaces the whole bundle in the dashboard bucket and prunes files it no longer has; the bucket holds nothing else.',
    });

    const deployment = new s3deploy.BucketDeployment(this, 'Deployment', {
      sources: sources.map((config) => ({ bind: () => config })),
      destinationBucket: this.bucket,
      distribution: this.distribution,
      distributionPaths: ['/*'],
      retainOnDelete: false,
      role: fixedRole,
      logGroup,
    });
    // CDK's singleton handler function of every BucketDeployment in the stack.
    const handler = Stack.of(this).node.children.find((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
    if (handler)
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-L1',
        reason:
          "CDK's BucketDeployment handler runs only at deploy time, on the Python runtime CDK ships its handler code and AWS CLI layer for; changing the runtime under CDK's code is riskier than following CDK's upgrades.",
      });
    return deployment;
  }
}

/** cdk-nag findings about the distribution, each acknowledged with why. */
function acknowledgeDistributionFindings(distribution: cloudfront.Distribution): void {
  Validations.of(distribution).acknowledge({
    id: 'AwsSolutions-CFR1',
    reason:
      'No geo restriction: tenants choose where their people work, and the page holds no data; every call it makes needs the tenant API key, checked by API Gateway.',
  });
  Validations.of(distribution).acknowledge({
    id: 'AwsSolutions-CFR2',
    reason:
      'No WAF web ACL: the distribution serves three static files, read-only (GET/HEAD); the API behind the key is throttled and capped by its usage plan. A web ACL costs about 6 USD a month per tenant while the platform is idle.',
  });
  Validations.of(distribution).acknowledge({
    id: 'AwsSolutions-CFR4',
    reason:
      'The default *.cloudfront.net certificate, for which CloudFront fixes the viewer security policy (TLSv1). Viewers negotiate TLS 1.2/1.3 in practice; a tenant that adds its own domain and ACM certificate sets TLSv1.2_2021.',
  });
}

/** The logical id of a construct's CloudFormation resource, as cdk-nag names it in findings. */
function logicalIdOf(construct: Construct): string {
  const cfn = construct.node.defaultChild as CfnElement;
  return Stack.of(construct).resolve(cfn.logicalId) as string;
}
