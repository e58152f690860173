import type { status } from '@grpc/grpc-js';
import { expect } from 'vitest';
import { ShoalError } from '../../src/common/errors';

// Not in registry.ts: bench/pull.ts imports that one outside the test runner, where vitest cannot load.

/** Awaits `p`, expecting it to fail with a ShoalError of this gRPC code and a message matching `message`; returns the error. */
export async function refused(p: Promise<unknown>, code: status, message: RegExp): Promise<ShoalError> {
  const err = await p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ShoalError);
  expect((err as ShoalError).message).toMatch(message);
  expect((err as ShoalError).code).toBe(code);
  return err as ShoalError;
}
