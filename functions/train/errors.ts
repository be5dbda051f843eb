/**
 * The training job's side of the error vocabulary: its own input errors, and the
 * one mapping from anything thrown to what the user reads in the job status.
 */
import { ZodError } from 'zod';
import { toErrorBody, UserError } from '../../shared/errors.js';
import { NotFoundError } from '../../shared/ports/object-store.js';
import type { ErrorBody } from '../../shared/schemas/errors.js';

/** A problem with the job's input that the user can fix (bad labels, too little data). */
export class TrainingInputError extends UserError {
  override name = 'TrainingInputError';
  constructor(message: string) {
    super('INVALID_DATASET', message);
  }
}

/** A task the job would train has no label in the train split: its head would learn nothing and still be published. */
export class NoTrainLabelsError extends UserError {
  override name = 'NoTrainLabelsError';
  constructor(message: string) {
    super('NO_TRAIN_LABELS', message);
  }
}

/**
 * What the user reads in the job status: a code and one readable line. Besides
 * the user errors, a missing object or a schema mismatch here means the prepared
 * data the job reads is incomplete or damaged (elsewhere they mean other things).
 */
export function toJobError(err: unknown): ErrorBody {
  if (err instanceof NotFoundError)
    return { code: 'MISSING_DATA', message: `the prepared dataset is incomplete: ${err.key} is missing; upload train.json again to prepare it anew` };
  if (err instanceof ZodError)
    return {
      code: 'INVALID_DATA',
      message: `prepared data does not match its schema: ${err.issues
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .slice(0, 3)
        .join('; ')}`,
    };
  return toErrorBody(err, (detail) => `training failed unexpectedly: ${detail}`);
}
