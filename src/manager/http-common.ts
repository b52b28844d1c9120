/**
 * What every route of the manager's HTTP server shares: the HTTP status of each error code,
 * JSON answers, error answers (`{code, message, details}`), and reading a JSON body with a
 * size limit. A request never crashes the server: anything that is not a HornbillError is
 * answered as INTERNAL (500) and logged with its stack by the caller.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ErrorCode, HornbillError, isHornbillError, type WireError } from '../errors.ts';

/** Request bodies larger than this are refused with 413 (Kubernetes' own limit is 3 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

const STATUS_OF_CODE: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  MANAGER_BAD_REQUEST: 400,
  RESOURCE_NOT_FOUND: 404,
  MANAGER_ROUTE_NOT_FOUND: 404,
  MANAGER_RESOURCE_API_DISABLED: 404,
  MANAGER_METHOD_NOT_ALLOWED: 405,
  RESOURCE_ALREADY_EXISTS: 409,
  RESOURCE_CONFLICT: 409,
  RESOURCE_GONE: 410,
  MANAGER_BODY_TOO_LARGE: 413,
  MANAGER_UNSUPPORTED_MEDIA_TYPE: 415,
  RESOURCE_INVALID: 422,
  MANAGER_LIMIT_REACHED: 429,
  RESOURCE_STORE_CLOSED: 503,
  RESOURCE_STORE_FAILED: 503,
  RESOURCE_STORE_LOCKED: 503,
};

/** The HTTP status for an error code (500 for any code without a more specific one). */
export function httpStatusOf(code: ErrorCode): number {
  return STATUS_OF_CODE[code] ?? 500;
}

/** The code a client assumes for an error answer without a readable body. */
export function codeOfHttpStatus(status: number): ErrorCode {
  for (const [code, mapped] of Object.entries(STATUS_OF_CODE)) {
    if (mapped === status) return code as ErrorCode;
  }
  return status >= 500 ? 'INTERNAL' : 'MANAGER_BAD_RESPONSE';
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** The wire form of any thrown value; non-Hornbill errors become INTERNAL without their stack. */
export function toWireError(error: unknown): WireError {
  if (isHornbillError(error)) return error.toWire();
  return {
    code: 'INTERNAL',
    message: `internal error: ${(error as Error)?.message ?? String(error)}`,
    details: {},
  };
}

export function sendError(response: ServerResponse, error: unknown): void {
  const wire = toWireError(error);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  sendJson(response, httpStatusOf(wire.code), wire);
}

export function badRequest(message: string, details: Record<string, unknown> = {}): HornbillError {
  return new HornbillError('MANAGER_BAD_REQUEST', message, details);
}

/** Reads the whole body (at most `limitBytes`) and parses it as one JSON object. */
export async function readJsonObject(
  request: IncomingMessage,
  limitBytes = MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limitBytes) throw tooLarge(limitBytes);
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of request as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > limitBytes) throw tooLarge(limitBytes);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof HornbillError) throw error;
    // The client went away mid-body (aborted, reset): nobody is left to answer; not a bug.
    throw badRequest(`the request body ended early: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks, length).toString('utf8'));
  } catch (error) {
    throw badRequest(`the request body is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function tooLarge(limitBytes: number): HornbillError {
  return new HornbillError('MANAGER_BODY_TOO_LARGE', `the request body is larger than ${limitBytes} bytes`, {
    limitBytes,
  });
}
