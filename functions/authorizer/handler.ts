import { APIGatewayClient, GetApiKeyCommand } from '@aws-sdk/client-api-gateway';
import type { APIGatewayAuthorizerResult } from 'aws-lambda';
import { loadEnv } from '../../shared/schemas/env.js';
import { authorizeAdmin } from './core.js';
import { AdminAuthorizerEventSchema, AuthorizerEnvSchema } from './schema.js';

/**
 * How long a container keeps the admin key's value before reading it again, so a
 * key replaced in API Gateway takes effect without a deploy. (API Gateway also
 * caches each decision for the authorizer's TTL.)
 */
const KEY_TTL_MS = 5 * 60 * 1000;

/** Reads the admin key from API Gateway itself: the value lives in one place, and nothing needs rotating twice. */
export function createAdminKeyReader(keyId: string, client: APIGatewayClient = new APIGatewayClient({}), now: () => number = Date.now): () => Promise<string> {
  let cached: { value: string; at: number } | undefined;
  return async () => {
    if (cached && now() - cached.at < KEY_TTL_MS) return cached.value;
    const out = await client.send(new GetApiKeyCommand({ apiKey: keyId, includeValue: true }));
    if (!out.value) throw new Error(`API key ${keyId} has no value`);
    cached = { value: out.value, at: now() };
    return out.value;
  };
}

let adminKey: (() => Promise<string>) | undefined;

/** REQUEST authorizer of the API's mutating routes. The environment is read on the first request. */
export async function handler(event: unknown): Promise<APIGatewayAuthorizerResult> {
  adminKey ??= createAdminKeyReader(loadEnv(AuthorizerEnvSchema).ADMIN_API_KEY_ID);
  return authorizeAdmin(AdminAuthorizerEventSchema.parse(event), { adminKey });
}
