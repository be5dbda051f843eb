import { describe, expect, it } from 'vitest';
import { toErrorBody, UserError } from '../../../shared/errors.js';
import { ErrorBodySchema } from '../../../shared/schemas/errors.js';
import { JobStatusSchema } from '../../../shared/schemas/job.js';

const status = (error: { code: string; message: string }) => ({
  jobId: 'j',
  model: 'm',
  dataset: 'd',
  datasetHash: 'h',
  state: 'failed',
  progress: 1,
  metrics: {},
  error,
  createdAt: 't',
  updatedAt: 't',
});

describe('the error vocabulary', () => {
  it('reads statuses written with the old lower-case codes in the current spelling', () => {
    // Act
    const read = ['invalid_spec', 'no_train_labels', 'internal_error', 'cancelled', 'JOB_CRASHED', 'something_else'].map(
      (code) => JobStatusSchema.parse(status({ code, message: 'x' })).error?.code,
    );

    // Assess
    expect(read).toEqual(['INVALID_SPEC', 'NO_TRAIN_LABELS', 'INTERNAL', 'JOB_CANCELLED', 'JOB_CRASHED', 'INTERNAL']);
  });

  it('accepts only codes of the vocabulary in a new error body', () => {
    expect(ErrorBodySchema.safeParse({ code: 'MODEL_NOT_FOUND', message: 'm' }).success).toBe(true);
    expect(ErrorBodySchema.safeParse({ code: 'model_not_found', message: 'm' }).success).toBe(false);
  });

  it('maps a user error to its own code and anything else to INTERNAL without its detail', () => {
    // Act
    const user = toErrorBody(new UserError('INVALID_SPEC', 'fineTune.layers is 9\nstack'));
    const internal = toErrorBody(new TypeError('cannot read x of undefined'), () => 'internal error; see the logs');

    // Assess
    expect(user).toEqual({ code: 'INVALID_SPEC', message: 'fineTune.layers is 9' });
    expect(internal).toEqual({ code: 'INTERNAL', message: 'internal error; see the logs' });
  });
});
