import { isPipelineError } from '../../services/common/errors.ts';

/** The message of the usage error (exit status 2: code INPUT_INVALID) `work` throws; any other outcome fails the test. */
export function usageError(work: () => unknown): string {
  try {
    work();
  } catch (err) {
    if (isPipelineError(err, 'INPUT_INVALID')) return err.message;
    throw err;
  }
  throw new Error('expected a usage error');
}
