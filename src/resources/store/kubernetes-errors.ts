/**
 * How a failed Kubernetes API request becomes a HornbillError with a stable code. The API
 * server answers a failure with an HTTP status and, usually, a metav1.Status body (`reason`,
 * `message`, `details.causes`); @kubernetes/client-node raises an ApiException (`code`, raw
 * `body`) for a request and an Error with `statusCode` for a watch; a network failure is a
 * TypeError from fetch with the system error as its cause, or an AbortError / TimeoutError.
 *
 * | HTTP | code |
 * |---|---|
 * | 400 | INVALID_ARGUMENT |
 * | 401 | KUBERNETES_UNAUTHORIZED |
 * | 403 | KUBERNETES_FORBIDDEN |
 * | 404 | RESOURCE_NOT_FOUND, or KUBERNETES_RESOURCE_TYPE_MISSING when the path itself is unknown |
 * | 409 | RESOURCE_ALREADY_EXISTS (reason AlreadyExists), else RESOURCE_CONFLICT |
 * | 410 | RESOURCE_GONE |
 * | 422 | RESOURCE_INVALID (details.field: the first cause's field) |
 * | other | KUBERNETES_REQUEST_FAILED |
 * | none (network) | KUBERNETES_UNREACHABLE |
 *
 * Every mapped error carries `details.status` (the HTTP status, 0 for a network failure).
 */
import { type ErrorCode, HornbillError, isHornbillError } from '../../errors.ts';
import { isPlainObject } from '../json.ts';
import type { FieldError } from '../schema.ts';

/** The metav1.Status the API server sends with a failure (and in a watch's ERROR event). */
export interface KubernetesStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
    retryAfterSeconds?: number;
  };
}

/** What the request was, for the message and details of the error. */
export interface RequestDescription {
  /** get, list, create, update, updateStatus, patch, delete, watch, recordEvent, … */
  operation: string;
  kind?: string;
  namespace?: string;
  name?: string;
}

/** Longest server message copied into an error (Status messages can quote whole objects). */
const MAX_SERVER_MESSAGE_LENGTH = 1024;

/** The HTTP status of a client-node failure, or undefined when no response arrived. */
export function httpStatusOf(error: unknown): number | undefined {
  // A DOMException (AbortError, TimeoutError) has a numeric legacy `code` that is no status.
  if (typeof error !== 'object' || error === null || error instanceof DOMException) return undefined;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  const isStatus = (value: unknown): value is number =>
    typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599;
  if (isStatus(statusCode)) return statusCode;
  // ApiException carries the status as `code`; Node's system errors use `code` for a string.
  if (isStatus(code)) return code;
  return undefined;
}

/** The Status in a failure's body: parsed from the text client-node keeps, or as given. */
export function statusBodyOf(error: unknown): KubernetesStatus | undefined {
  const body = (error as { body?: unknown } | null)?.body;
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return body.trim() === '' ? undefined : { message: body.slice(0, MAX_SERVER_MESSAGE_LENGTH) };
    }
  }
  return isPlainObject(value) ? (value as KubernetesStatus) : undefined;
}

/** `spec.size` from the API server's `spec.size`, `.spec.size` or `[spec.size]`. */
function fieldPath(field: string | undefined): string {
  if (field === undefined || field === '') return '';
  return field.replace(/^\./, '');
}

/** The field errors of a 422, as validation.ts reports them. */
export function causesOf(status: KubernetesStatus | undefined): FieldError[] {
  return (status?.details?.causes ?? []).map((cause) => ({
    field: fieldPath(cause.field),
    reason: cause.message ?? cause.reason ?? 'is invalid',
  }));
}

function who(request: RequestDescription): string {
  if (request.kind === undefined) return request.operation;
  const object =
    request.name === undefined ? `${request.namespace ?? '*'}` : `${request.namespace ?? ''}/${request.name}`;
  return `${request.operation} ${request.kind} ${object}`;
}

/** The code for an HTTP failure status (see the table above). */
export function codeForStatus(status: number, body: KubernetesStatus | undefined): ErrorCode {
  switch (status) {
    case 400:
      return 'INVALID_ARGUMENT';
    case 401:
      return 'KUBERNETES_UNAUTHORIZED';
    case 403:
      return 'KUBERNETES_FORBIDDEN';
    case 404:
      // The API server's answer for a path it does not serve has no details; a missing object
      // names itself in details (name, kind).
      return body !== undefined && body.details?.name === undefined && body.details?.kind === undefined
        ? 'KUBERNETES_RESOURCE_TYPE_MISSING'
        : 'RESOURCE_NOT_FOUND';
    case 409:
      return body?.reason === 'AlreadyExists' ? 'RESOURCE_ALREADY_EXISTS' : 'RESOURCE_CONFLICT';
    case 410:
      return 'RESOURCE_GONE';
    case 422:
      return 'RESOURCE_INVALID';
    default:
      return 'KUBERNETES_REQUEST_FAILED';
  }
}

/** A system error code (ECONNREFUSED, ENOTFOUND, CERT_HAS_EXPIRED, …) in an error or its causes. */
function systemCodeOf(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function isNetworkFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'AbortError' || error.name === 'TimeoutError') return true;
  if (error instanceof TypeError && /fetch failed|terminated/i.test(error.message)) return true;
  return systemCodeOf(error) !== undefined;
}

/**
 * A Status received as a value (a watch's ERROR event) as an error. Watch-specific: a
 * resourceVersion that is too old (410, Expired) or too new (504 with cause
 * ResourceVersionTooLarge) both mean "list again", RESOURCE_GONE.
 */
export function fromKubernetesStatus(status: KubernetesStatus, request: RequestDescription): HornbillError {
  const httpStatus = typeof status.code === 'number' ? status.code : 500;
  const tooLarge = (status.details?.causes ?? []).some((cause) => cause.reason === 'ResourceVersionTooLarge');
  const code: ErrorCode =
    request.operation === 'watch' && (status.reason === 'Expired' || status.reason === 'Gone' || tooLarge)
      ? 'RESOURCE_GONE'
      : codeForStatus(httpStatus, status);
  return fromHttpFailure(httpStatus, status, request, code);
}

function fromHttpFailure(
  httpStatus: number,
  body: KubernetesStatus | undefined,
  request: RequestDescription,
  code: ErrorCode,
  cause?: unknown,
): HornbillError {
  const serverMessage = (body?.message ?? '').slice(0, MAX_SERVER_MESSAGE_LENGTH);
  const details: Record<string, unknown> = {
    status: httpStatus,
    operation: request.operation,
    kind: request.kind,
    namespace: request.namespace,
    name: request.name,
  };
  if (body?.reason !== undefined) details.reason = body.reason;
  if (serverMessage !== '') details.serverMessage = serverMessage;
  if (body?.details?.retryAfterSeconds !== undefined)
    details.retryAfterSeconds = body.details.retryAfterSeconds;
  if (code === 'RESOURCE_INVALID') {
    const causes = causesOf(body);
    details.causes = causes;
    details.field = causes[0]?.field ?? '';
    details.reason = causes[0]?.reason ?? body?.reason;
  }
  const text = serverMessage === '' ? `HTTP ${httpStatus}` : `HTTP ${httpStatus}: ${serverMessage}`;
  return new HornbillError(code, `${who(request)}: ${text}`, details, { cause });
}

/**
 * Any failure of a request to the API server as a HornbillError. HornbillErrors pass through
 * unchanged; anything without an HTTP status is treated as a network failure (the request
 * may or may not have reached the server).
 */
export function fromKubernetesError(error: unknown, request: RequestDescription): HornbillError {
  if (isHornbillError(error)) return error;
  const httpStatus = httpStatusOf(error);
  if (httpStatus !== undefined) {
    const body = statusBodyOf(error);
    return fromHttpFailure(httpStatus, body, request, codeForStatus(httpStatus, body), error);
  }
  const systemCode = systemCodeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  const details: Record<string, unknown> = {
    status: 0,
    operation: request.operation,
    kind: request.kind,
    namespace: request.namespace,
    name: request.name,
  };
  if (systemCode !== undefined) details.systemCode = systemCode;
  if (error instanceof Error && error.name === 'TimeoutError') details.timedOut = true;
  const reason = systemCode === undefined ? message : `${message} (${systemCode})`;
  if (isNetworkFailure(error)) {
    return new HornbillError(
      'KUBERNETES_UNREACHABLE',
      `${who(request)}: the API server cannot be reached: ${reason}`,
      details,
      {
        cause: error,
      },
    );
  }
  return new HornbillError('KUBERNETES_REQUEST_FAILED', `${who(request)}: ${reason}`, details, {
    cause: error,
  });
}
