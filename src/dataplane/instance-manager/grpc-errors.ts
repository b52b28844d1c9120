import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { type ErrorCode, ErrorCodes, HornbillError, isHornbillError } from '../../errors.ts';

/** Trailing metadata keys that carry a Hornbill error across gRPC. */
export const ERROR_CODE_KEY = 'hornbill-error-code';
/** Binary (`-bin`) so that any text fits: gRPC allows only printable ASCII in other values. */
export const ERROR_DETAILS_KEY = 'hornbill-error-details-bin';
/** Details larger than this (as JSON) are not sent. */
const DETAILS_CHARS_MAX = 4096;

/**
 * The gRPC status of each Hornbill error code a caller of the instance manager can meet.
 * Codes not listed are INTERNAL: a failure the caller cannot fix by changing its request.
 */
const STATUS_BY_CODE: Partial<Record<ErrorCode, status>> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  CLI_USAGE: status.INVALID_ARGUMENT,
  STORE_OUT_OF_RANGE: status.INVALID_ARGUMENT,
  STORE_UNALIGNED: status.INVALID_ARGUMENT,
  STORE_INVALID_NAME: status.INVALID_ARGUMENT,
  INSTANCE_DISK_UNKNOWN: status.INVALID_ARGUMENT,

  INSTANCE_NOT_FOUND: status.NOT_FOUND,
  STORE_SNAPSHOT_NOT_FOUND: status.NOT_FOUND,
  STORE_INDEX_MISSING: status.NOT_FOUND,
  ISCSI_VOLUME_NOT_FOUND: status.NOT_FOUND,
  NBD_EXPORT_NOT_FOUND: status.NOT_FOUND,

  INSTANCE_EXISTS: status.ALREADY_EXISTS,
  STORE_SNAPSHOT_EXISTS: status.ALREADY_EXISTS,
  ISCSI_VOLUME_EXISTS: status.ALREADY_EXISTS,
  NBD_EXPORT_EXISTS: status.ALREADY_EXISTS,

  INSTANCE_NOT_RUNNING: status.FAILED_PRECONDITION,
  INSTANCE_CONFLICT: status.FAILED_PRECONDITION,
  STORE_LOCKED: status.FAILED_PRECONDITION,
  STORE_NOT_EMPTY: status.FAILED_PRECONDITION,
  STORE_SNAPSHOT_REMOVED: status.FAILED_PRECONDITION,
  STORE_SHRINK_REFUSED: status.FAILED_PRECONDITION,
  STORE_FORMAT_UNSUPPORTED: status.FAILED_PRECONDITION,
  ENGINE_REBUILD_BUSY: status.FAILED_PRECONDITION,
  ENGINE_CLONE_BUSY: status.FAILED_PRECONDITION,
  ENGINE_CLONE_NOT_EMPTY: status.FAILED_PRECONDITION,
  ENGINE_FRONTEND_ACTIVE: status.FAILED_PRECONDITION,
  SHARE_MANAGER_DEVICE_UNAVAILABLE: status.FAILED_PRECONDITION,
  SHARE_MANAGER_LEASE_HELD: status.FAILED_PRECONDITION,

  INSTANCE_LIMIT_REACHED: status.RESOURCE_EXHAUSTED,
  STORE_NO_SPACE: status.RESOURCE_EXHAUSTED,
  SHARE_MANAGER_ADDRESS_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  SHARE_MANAGER_PORT_IN_USE: status.RESOURCE_EXHAUSTED,

  INSTANCE_MANAGER_CLOSED: status.UNAVAILABLE,
  INSTANCE_MANAGER_UNREACHABLE: status.UNAVAILABLE,
  INSTANCE_MANAGER_LISTEN_FAILED: status.UNAVAILABLE,
  INSTANCE_FAILED: status.UNAVAILABLE,
  DEVICE_NOT_READY: status.UNAVAILABLE,
  REPLICA_UNREACHABLE: status.UNAVAILABLE,
  REPLICA_TIMEOUT: status.UNAVAILABLE,
  REPLICA_LISTEN_FAILED: status.UNAVAILABLE,
  ISCSI_LISTEN_FAILED: status.UNAVAILABLE,
  NBD_SERVER_CLOSED: status.UNAVAILABLE,
  WORKER_FAILED: status.UNAVAILABLE,
  WORKER_CHANNEL_CLOSED: status.UNAVAILABLE,
  STORE_CLOSED: status.UNAVAILABLE,

  STORE_CHECKSUM_MISMATCH: status.DATA_LOSS,
  STORE_INDEX_CORRUPT: status.DATA_LOSS,
  STORE_JOURNAL_CORRUPT: status.DATA_LOSS,
  STORE_LAYER_MISSING: status.DATA_LOSS,
  STORE_UNKNOWN_FILE: status.DATA_LOSS,
};

export function grpcStatusFor(code: string): status {
  return STATUS_BY_CODE[code as ErrorCode] ?? status.INTERNAL;
}

/** A thrown error as the status a handler answers with; anything not coded is INTERNAL. */
export function toServiceError(error: unknown): Partial<ServiceError> & { code: status; details: string } {
  return serviceErrorFor(error, grpcStatusFor);
}

/**
 * A thrown error as a gRPC status (`statusFor` maps the code; the CSI driver has its own
 * table), with the code and the details in the trailing metadata.
 */
export function serviceErrorFor(
  error: unknown,
  statusFor: (code: ErrorCode) => status,
): Partial<ServiceError> & { code: status; details: string } {
  const coded = isHornbillError(error)
    ? error
    : new HornbillError('INTERNAL', `unexpected error: ${(error as Error)?.message ?? String(error)}`);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, coded.code);
  let details: string | undefined;
  try {
    details = JSON.stringify(coded.details);
  } catch {
    // Details that do not serialize are dropped; the code and message remain.
  }
  if (details !== undefined && details.length <= DETAILS_CHARS_MAX)
    metadata.set(ERROR_DETAILS_KEY, Buffer.from(details, 'utf8'));
  return {
    code: statusFor(coded.code),
    details: coded.message,
    metadata,
    name: coded.name,
    message: coded.message,
  };
}

/** The Hornbill code a failed call's trailing metadata names (if a known one) and its details. */
export function sentError(error: ServiceError): {
  code: ErrorCode | undefined;
  details: Record<string, unknown>;
} {
  const sent = error.metadata?.get(ERROR_CODE_KEY)[0];
  const detailsBytes = error.metadata?.get(ERROR_DETAILS_KEY)[0];
  let details: Record<string, unknown> = {};
  if (Buffer.isBuffer(detailsBytes)) {
    try {
      const parsed: unknown = JSON.parse(detailsBytes.toString('utf8'));
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
        details = parsed as Record<string, unknown>;
    } catch {
      details = {};
    }
  }
  details.grpcStatus = error.code;
  return { code: typeof sent === 'string' && sent in ErrorCodes ? (sent as ErrorCode) : undefined, details };
}

/**
 * A client's view of a failed call: the Hornbill error the server sent (its code from the
 * trailing metadata), or, for a status without one (a transport failure, a deadline),
 * UNAVAILABLE / INVALID_ARGUMENT / INTERNAL by the status.
 */
export function fromServiceError(error: ServiceError): HornbillError {
  const { code: sent, details } = sentError(error);
  if (sent !== undefined) return new HornbillError(sent, error.details, details, { cause: error });
  const code: ErrorCode =
    error.code === status.UNAVAILABLE ||
    error.code === status.DEADLINE_EXCEEDED ||
    error.code === status.CANCELLED
      ? 'INSTANCE_MANAGER_UNREACHABLE'
      : error.code === status.INVALID_ARGUMENT
        ? 'INVALID_ARGUMENT'
        : 'INTERNAL';
  return new HornbillError(code, error.details || error.message, details, { cause: error });
}
