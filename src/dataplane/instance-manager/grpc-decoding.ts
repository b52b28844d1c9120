/**
 * Requests whose bytes do not decode, as a coded error instead of a dropped call: the
 * service definition's deserializers are wrapped so that a bad message becomes a marker
 * object, and a handler's first step (`checkDecoded`) turns the marker into
 * INVALID_ARGUMENT. Used by the instance manager's gRPC service and the CSI driver.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { HornbillError } from '../../errors.ts';

const MALFORMED = Symbol('malformed request');

/** Throws INVALID_ARGUMENT for a request whose bytes did not decode; returns it otherwise. */
export function checkDecoded<T>(request: T): T {
  if (request !== null && typeof request === 'object' && MALFORMED in request) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `the request does not decode: ${(request as Record<symbol, unknown>)[MALFORMED]}`,
    );
  }
  return request;
}

/** The service definition with deserializers that report bad bytes instead of throwing. */
export function tolerantDefinition(definition: ServiceDefinition): ServiceDefinition {
  const tolerant: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as [string, MethodDefinition<unknown, unknown>][]) {
    tolerant[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return { [MALFORMED]: (error as Error).message };
        }
      },
    };
  }
  return tolerant;
}
