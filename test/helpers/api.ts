/** What the API tests build by hand: a REST proxy event, and the metadata of a small stored model. */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import { TrainSpecSchema } from '../../shared/schemas/spec.js';

/** A REST API proxy event as API Gateway (or the local gateway) hands it to a handler; a string body is sent as is. */
export function apiEvent(method: string, resource: string, params: Record<string, string> | null, body?: unknown): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    resource,
    path: resource,
    pathParameters: params,
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    isBase64Encoded: false,
    headers: {},
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: {} as APIGatewayProxyEvent['requestContext'],
  };
}

/** Metadata of a two-class model on 2-number vectors (base none), enough for registry and API tests. */
export function vectorModelMetadata(model: string, version: string, dataset: { name: string; hash: string } = { name: model, hash: 'h' }): ModelMetadata {
  return {
    model,
    version,
    createdAt: new Date().toISOString(),
    kind: 'train',
    input: { type: 'vector', size: 2 },
    base: { name: 'none' },
    tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels: ['a', 'b'] }],
    dataset,
    spec: TrainSpecSchema.parse({}),
    metrics: {},
  };
}
