import { z } from 'zod';
import { APIGatewayRequestAuthorizerEventSchema } from '@aws-lambda-powertools/parser/schemas';

/** The fields of a REQUEST authorizer event the admin check reads, from Powertools' schema. */
export const AdminAuthorizerEventSchema = APIGatewayRequestAuthorizerEventSchema.pick({ type: true, methodArn: true, headers: true });
export type AdminAuthorizerEvent = z.infer<typeof AdminAuthorizerEventSchema>;

/** Environment of the authorizer, validated on the first request. */
export const AuthorizerEnvSchema = z.object({
  /** Id of the tenant's admin API key (an API Gateway key in the usage plan). */
  ADMIN_API_KEY_ID: z.string().min(1),
});
