import { APIGatewayClient, GetApiKeyCommand } from '@aws-sdk/client-api-gateway';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { authorizeAdmin, stageWildcardArn } from '../../../functions/authorizer/core.js';
import { createAdminKeyReader } from '../../../functions/authorizer/handler.js';
import { AdminAuthorizerEventSchema } from '../../../functions/authorizer/schema.js';

const METHOD_ARN = 'arn:aws:execute-api:eu-west-1:123456789012:abc123def4/v1/POST/models/pets/rollback';
const ADMIN = 'admin-key-0123456789abcdefghij';
const PREDICT = 'predict-key-0123456789abcdefgh';

/** A REQUEST authorizer event as API Gateway sends it (the fields the schema keeps). */
const event = (headers: Record<string, string>) => AdminAuthorizerEventSchema.parse({ type: 'REQUEST', methodArn: METHOD_ARN, headers });
const effectOf = (r: Awaited<ReturnType<typeof authorizeAdmin>>) => (r.policyDocument.Statement[0] as { Effect: string }).Effect;

describe('admin authorizer', () => {
  const deps = { adminKey: async () => ADMIN };

  it('allows the admin key on every route of the stage (the decision is cached per key)', async () => {
    const result = await authorizeAdmin(event({ 'x-api-key': ADMIN }), deps);

    expect(effectOf(result)).toBe('Allow');
    expect(result.principalId).toBe('admin');
    expect(result.policyDocument.Statement[0]).toMatchObject({
      Action: 'execute-api:Invoke',
      Resource: 'arn:aws:execute-api:eu-west-1:123456789012:abc123def4/v1/*/*',
    });
  });

  it('denies the predict key, a prefix of the admin key, and no key, whatever the header case', async () => {
    const cases: Record<string, string>[] = [{ 'x-api-key': PREDICT }, { 'X-Api-Key': ADMIN.slice(0, -1) }, { 'x-api-key': '' }, {}];
    for (const headers of cases) {
      expect(effectOf(await authorizeAdmin(event(headers), deps)), JSON.stringify(headers)).toBe('Deny');
    }
    expect(effectOf(await authorizeAdmin(event({ 'X-API-KEY': ADMIN }), deps))).toBe('Allow');
  });

  it('rejects events that are not REQUEST authorizer events', () => {
    expect(() => AdminAuthorizerEventSchema.parse({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: ADMIN })).toThrow();
    expect(() => stageWildcardArn('not-an-arn')).toThrow(/methodArn/);
  });

  it('reads the admin key from API Gateway once per five minutes', async () => {
    const apigw = mockClient(APIGatewayClient);
    apigw.on(GetApiKeyCommand, { apiKey: 'k1', includeValue: true }).resolves({ id: 'k1', value: ADMIN });
    let now = 0;
    const read = createAdminKeyReader('k1', new APIGatewayClient({ region: 'eu-west-1' }), () => now);

    expect(await read()).toBe(ADMIN);
    now = 4 * 60_000;
    await read();
    expect(apigw.commandCalls(GetApiKeyCommand)).toHaveLength(1);
    now = 6 * 60_000;
    await read();
    expect(apigw.commandCalls(GetApiKeyCommand)).toHaveLength(2);
  });
});
