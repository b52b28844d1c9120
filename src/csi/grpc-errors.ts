/**
 * HornbillErrors as the gRPC statuses the CSI specification names for each failure, with
 * the Hornbill code and details in the trailing metadata (the same keys the instance
 * manager uses: `hornbill-error-code`, `hornbill-error-details-bin`), and back again on
 * the client side.
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import { sentError, serviceErrorFor } from '../dataplane/instance-manager/grpc-errors.ts';
import { type ErrorCode, HornbillError } from '../errors.ts';

export { ERROR_CODE_KEY, ERROR_DETAILS_KEY } from '../dataplane/instance-manager/grpc-errors.ts';

/** Codes not listed are INTERNAL. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, status>> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  RESOURCE_INVALID: status.INVALID_ARGUMENT,
  CSI_CAPABILITY_UNSUPPORTED: status.INVALID_ARGUMENT,
  CSI_PARAMETER_INVALID: status.INVALID_ARGUMENT,

  RESOURCE_NOT_FOUND: status.NOT_FOUND,
  CSI_VOLUME_NOT_FOUND: status.NOT_FOUND,
  CSI_SNAPSHOT_NOT_FOUND: status.NOT_FOUND,
  CSI_NODE_NOT_FOUND: status.NOT_FOUND,

  RESOURCE_ALREADY_EXISTS: status.ALREADY_EXISTS,
  CSI_VOLUME_INCOMPATIBLE: status.ALREADY_EXISTS,

  CSI_CAPACITY_OUT_OF_RANGE: status.OUT_OF_RANGE,

  CSI_VOLUME_PUBLISHED_ELSEWHERE: status.FAILED_PRECONDITION,
  CSI_VOLUME_BUSY: status.FAILED_PRECONDITION,
  CSI_NOT_STAGED: status.FAILED_PRECONDITION,
  CSI_HOST_TOOL_MISSING: status.FAILED_PRECONDITION,
  CSI_NODE_REQUIREMENTS_MISSING: status.FAILED_PRECONDITION,
  CSI_DEVICE_BUSY: status.FAILED_PRECONDITION,
  CSI_FILESYSTEM_MISMATCH: status.FAILED_PRECONDITION,

  CSI_VOLUME_NOT_READY: status.ABORTED,
  CSI_OPERATION_PENDING: status.ABORTED,
  CSI_PAGINATION_TOKEN_INVALID: status.ABORTED,
  RESOURCE_CONFLICT: status.ABORTED,

  CSI_OPERATION_TIMEOUT: status.DEADLINE_EXCEEDED,
  CSI_HOST_COMMAND_TIMEOUT: status.DEADLINE_EXCEEDED,

  CSI_ISCSI_LOGIN_FAILED: status.UNAVAILABLE,
  CSI_DEVICE_NOT_FOUND: status.UNAVAILABLE,
  MANAGER_UNREACHABLE: status.UNAVAILABLE,
  KUBERNETES_UNREACHABLE: status.UNAVAILABLE,
  RESOURCE_STORE_CLOSED: status.UNAVAILABLE,
  RESOURCE_STORE_LOCKED: status.UNAVAILABLE,

  STORE_NO_SPACE: status.RESOURCE_EXHAUSTED,
  MANAGER_LIMIT_REACHED: status.RESOURCE_EXHAUSTED,
};

export function csiStatusFor(code: ErrorCode): status {
  return STATUS_BY_CODE[code] ?? status.INTERNAL;
}

/** A thrown error as the status a handler answers with; anything not coded is INTERNAL. */
export function toCsiServiceError(error: unknown): Partial<ServiceError> & { code: status; details: string } {
  return serviceErrorFor(error, csiStatusFor);
}

/** The client's view of a failed call: the HornbillError the server sent, with details.grpcStatus. */
export function fromCsiServiceError(error: ServiceError): HornbillError {
  const { code, details } = sentError(error);
  return new HornbillError(code ?? 'INTERNAL', error.details || error.message, details, { cause: error });
}
