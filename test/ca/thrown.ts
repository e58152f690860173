import { ShoalError } from '../../src/common/errors';

/** The ShoalError fn throws; fails the test if it throws nothing or something else. */
export function thrown(fn: () => unknown): ShoalError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ShoalError) return e;
    throw e;
  }
  throw new Error('expected a ShoalError, but nothing was thrown');
}

/** The ShoalError p rejects with; fails the test if it resolves or rejects with something else. */
export async function rejected(p: Promise<unknown>): Promise<ShoalError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ShoalError) return e;
    throw e;
  }
  throw new Error('expected a ShoalError, but the promise resolved');
}
