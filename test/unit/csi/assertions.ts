/** Checks that a CSI call failed with the gRPC status the specification names (and our code). */
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { type ErrorCode, isHornbillError } from '../../../src/errors.ts';

export async function rejectsWith(
  call: Promise<unknown>,
  expected: keyof typeof status,
  code?: ErrorCode,
): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(isHornbillError(error), `not a HornbillError: ${String(error)}`);
    assert.equal(
      status[error.details.grpcStatus as number],
      expected,
      `status ${status[error.details.grpcStatus as number]} (${error.code}: ${error.message}), wanted ${expected}`,
    );
    if (code !== undefined) assert.equal(error.code, code);
    return true;
  });
}
