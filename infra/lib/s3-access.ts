import { Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** What a principal may do with the objects under one prefix of the tenant bucket. */
export type PrefixAccess = 'list' | 'read' | 'write' | 'delete';

/**
 * The S3 actions behind each kind of access, spelled out: the bucket's own `grant*`
 * methods add wildcards (`s3:GetObject*`, `s3:List*` on the whole bucket,
 * `s3:DeleteObject*`, which includes `DeleteObjectVersion` and so defeats versioning).
 * The ObjectStore adapter uses GetObject/HeadObject, PutObject (and multipart uploads,
 * which `lib-storage` may abort), DeleteObject and ListObjectsV2 only.
 */
const OBJECT_ACTIONS: Record<Exclude<PrefixAccess, 'list'>, string[]> = {
  read: ['s3:GetObject'],
  write: ['s3:PutObject', 's3:AbortMultipartUpload'],
  delete: ['s3:DeleteObject'],
};

/**
 * Grants `access` to the objects under `prefix` (e.g. `models/`) and nothing else:
 * object actions on `<bucket>/<prefix>*`, and ListBucket on the bucket only for
 * requests whose `s3:prefix` lies under `prefix`.
 */
export function grantPrefix(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: string, access: PrefixAccess[]): void {
  if (!prefix.endsWith('/')) throw new Error(`prefix "${prefix}" must end with "/"`);
  const actions = access.flatMap((a) => (a === 'list' ? [] : OBJECT_ACTIONS[a]));
  if (actions.length) {
    iam.Grant.addToPrincipal({ grantee, actions, resourceArns: [bucket.arnForObjects(`${prefix}*`)] });
    acknowledgePrefixWildcard(bucket, grantee, prefix);
  }
  if (access.includes('list')) {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
      }),
    );
  }
}

/**
 * cdk-nag's IAM5 flags every wildcard in a resource, including `<bucket>/<prefix>*`.
 * Object keys under a prefix are named at run time, so that wildcard is the
 * narrowest resource there is; the acknowledgement names the exact finding.
 */
function acknowledgePrefixWildcard(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: string): void {
  const principal = grantee.grantPrincipal;
  const cfnBucket = bucket.node.defaultChild as CfnElement | undefined;
  if (!(principal instanceof Construct) || !cfnBucket) return;
  const logicalId = Stack.of(bucket).resolve(cfnBucket.logicalId) as string;
  Validations.of(principal).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>/${prefix}*]`,
    reason: `Objects under ${prefix} are named at run time (dataset, model, version or job ids), so the prefix is the narrowest resource; the actions are listed one by one, with no Delete of versions.`,
  });
}
