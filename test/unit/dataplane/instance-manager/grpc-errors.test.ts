import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import {
  ERROR_CODE_KEY,
  ERROR_DETAILS_KEY,
  fromServiceError,
  grpcStatusFor,
  toServiceError,
} from '../../../../src/dataplane/instance-manager/grpc-errors.ts';
import { type ErrorCode, ErrorCodes, HornbillError } from '../../../../src/errors.ts';

test('the errors a caller can fix map to the status that says so', () => {
  const expected: [ErrorCode, status][] = [
    ['INVALID_ARGUMENT', status.INVALID_ARGUMENT],
    ['INSTANCE_DISK_UNKNOWN', status.INVALID_ARGUMENT],
    ['STORE_INVALID_NAME', status.INVALID_ARGUMENT],
    ['INSTANCE_NOT_FOUND', status.NOT_FOUND],
    ['STORE_SNAPSHOT_NOT_FOUND', status.NOT_FOUND],
    ['INSTANCE_EXISTS', status.ALREADY_EXISTS],
    ['STORE_SNAPSHOT_EXISTS', status.ALREADY_EXISTS],
    ['INSTANCE_NOT_RUNNING', status.FAILED_PRECONDITION],
    ['INSTANCE_CONFLICT', status.FAILED_PRECONDITION],
    ['ENGINE_REBUILD_BUSY', status.FAILED_PRECONDITION],
    ['STORE_LOCKED', status.FAILED_PRECONDITION],
    ['INSTANCE_LIMIT_REACHED', status.RESOURCE_EXHAUSTED],
    ['STORE_NO_SPACE', status.RESOURCE_EXHAUSTED],
    ['DEVICE_NOT_READY', status.UNAVAILABLE],
    ['REPLICA_UNREACHABLE', status.UNAVAILABLE],
    ['INSTANCE_FAILED', status.UNAVAILABLE],
    ['INSTANCE_MANAGER_CLOSED', status.UNAVAILABLE],
    ['STORE_CHECKSUM_MISMATCH', status.DATA_LOSS],
    ['STORE_INDEX_CORRUPT', status.DATA_LOSS],
    ['INTERNAL', status.INTERNAL],
    ['REPLICA_PROTOCOL_ERROR', status.INTERNAL],
  ];
  for (const [code, grpcStatus] of expected) assert.equal(grpcStatusFor(code), grpcStatus, code);
});

test('every registered code maps to a status other than OK and UNKNOWN; unknown codes are INTERNAL', () => {
  for (const code of Object.keys(ErrorCodes)) {
    const mapped = grpcStatusFor(code);
    assert.ok(mapped !== status.OK && mapped !== status.UNKNOWN, code);
  }
  assert.equal(grpcStatusFor('NOT_A_CODE'), status.INTERNAL);
});

test('a coded error carries its code and details in the trailing metadata', () => {
  const failure = toServiceError(
    new HornbillError('INSTANCE_NOT_FOUND', 'no replica named pvc-1-r-1', { name: 'pvc-1-r-1' }),
  );
  assert.equal(failure.code, status.NOT_FOUND);
  assert.equal(failure.details, 'no replica named pvc-1-r-1');
  assert.deepEqual(failure.metadata!.get(ERROR_CODE_KEY), ['INSTANCE_NOT_FOUND']);
  assert.deepEqual(JSON.parse(String(failure.metadata!.get(ERROR_DETAILS_KEY)[0])), { name: 'pvc-1-r-1' });
});

test('details with any characters travel (gRPC refuses non-ASCII in text metadata)', () => {
  const failure = toServiceError(
    new HornbillError('INVALID_ARGUMENT', 'bad name', { value: 'x… é \n\u0000' }),
  );
  const received = fromServiceError(serviceError(failure.code, failure.details, failure.metadata));
  assert.equal(received.details.value, 'x… é \n\u0000');
});

test('an error without a code is INTERNAL; details too large or cyclic are left out', () => {
  const plain = toServiceError(new TypeError('x is undefined'));
  assert.equal(plain.code, status.INTERNAL);
  assert.deepEqual(plain.metadata!.get(ERROR_CODE_KEY), ['INTERNAL']);
  assert.match(plain.details, /x is undefined/);
  const big = toServiceError(new HornbillError('INVALID_ARGUMENT', 'big', { blob: 'x'.repeat(10_000) }));
  assert.deepEqual(big.metadata!.get(ERROR_DETAILS_KEY), []);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const odd = toServiceError(new HornbillError('INVALID_ARGUMENT', 'cyclic', cyclic));
  assert.deepEqual(odd.metadata!.get(ERROR_CODE_KEY), ['INVALID_ARGUMENT']);
});

function serviceError(code: status, details: string, metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata });
}

test('a client gets back the HornbillError the server sent', () => {
  const sent = toServiceError(
    new HornbillError('INSTANCE_EXISTS', 'exists with another spec', { name: 'a' }),
  );
  const received = fromServiceError(serviceError(sent.code, sent.details, sent.metadata));
  assert.equal(received.code, 'INSTANCE_EXISTS');
  assert.equal(received.message, 'exists with another spec');
  assert.equal(received.details.name, 'a');
  assert.equal(received.details.grpcStatus, status.ALREADY_EXISTS);
});

test('a status without a Hornbill code (transport, deadline, foreign server) gets one by its status', () => {
  assert.equal(
    fromServiceError(serviceError(status.UNAVAILABLE, 'connection refused')).code,
    'INSTANCE_MANAGER_UNREACHABLE',
  );
  assert.equal(
    fromServiceError(serviceError(status.DEADLINE_EXCEEDED, 'deadline')).code,
    'INSTANCE_MANAGER_UNREACHABLE',
  );
  assert.equal(fromServiceError(serviceError(status.INVALID_ARGUMENT, 'bad')).code, 'INVALID_ARGUMENT');
  assert.equal(fromServiceError(serviceError(status.UNIMPLEMENTED, 'no such method')).code, 'INTERNAL');
  const forged = new Metadata();
  forged.set(ERROR_CODE_KEY, 'NOT_A_CODE');
  assert.equal(fromServiceError(serviceError(status.NOT_FOUND, 'x', forged)).code, 'INTERNAL');
});
