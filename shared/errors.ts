/**
 * The base of every error a user can act on (bad spec, bad data, unknown model):
 * it carries its code from the one vocabulary (shared/schemas/errors.ts), so a
 * boundary (job status, HTTP response) maps any of them in one line, and every
 * other error is a fault of the platform: `INTERNAL`, with the detail in the logs.
 */
import type { ErrorBody, ErrorCode } from './schemas/errors.js';

export class UserError extends Error {
  override name = 'UserError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What a user reads for `err`: its own code and first line for a UserError, or
 * INTERNAL with `internalMessage` for anything else (the caller logs the detail).
 */
export function toErrorBody(err: unknown, internalMessage: (detail: string) => string = () => 'internal error; see the logs'): ErrorBody {
  const line = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
  if (err instanceof UserError) return { code: err.code, message: line };
  return { code: 'INTERNAL', message: internalMessage(line) };
}
