import { createHash, timingSafeEqual } from 'node:crypto';
import type { APIGatewayAuthorizerResult } from 'aws-lambda';
import type { AdminAuthorizerEvent } from './schema.js';

export interface AdminAuthorizerDeps {
  /** The admin key's value (cached by the caller). */
  adminKey: () => Promise<string>;
}

/** Every method and path of the stage the event came through: the decision is cached per key, not per route. */
export function stageWildcardArn(methodArn: string): string {
  // arn:aws:execute-api:<region>:<account>:<apiId>/<stage>/<METHOD>/<path...>
  const [prefix, stage] = methodArn.split('/');
  if (!prefix || !stage) throw new Error(`unexpected methodArn ${methodArn}`);
  return `${prefix}/${stage}/*/*`;
}

/** Compares digests, so the time taken says nothing about how much of the key matched. */
function sameKey(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Lets a request through to a mutating route (rollback, promote, uploads) only when
 * its `x-api-key` is the tenant's admin key. API Gateway checks on its own that the
 * key is one of the tenant's keys (usage plan); this tells the admin key from the predict key.
 * A Deny answers 403 (ADMIN_KEY_REQUIRED) through the API's gateway responses.
 */
export async function authorizeAdmin(event: AdminAuthorizerEvent, deps: AdminAuthorizerDeps): Promise<APIGatewayAuthorizerResult> {
  const presented = Object.entries(event.headers ?? {}).find(([name]) => name.toLowerCase() === 'x-api-key')?.[1] ?? '';
  const allowed = presented.length > 0 && sameKey(presented, await deps.adminKey());
  return {
    principalId: allowed ? 'admin' : 'anonymous',
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: allowed ? 'Allow' : 'Deny', Resource: stageWildcardArn(event.methodArn) }],
    },
    context: { role: allowed ? 'admin' : 'none' },
  };
}
