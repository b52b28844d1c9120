/**
 * What every mutation returns: the object it wrote (or null) and `errors`, each with a
 * Hornbill error code, a message and the argument at fault. A mutation that fails for a
 * reason the caller can act on (bad argument, missing object, conflict, state) answers
 * with errors; authentication and authorisation refusals are GraphQL errors of the whole
 * request, and anything unexpected is logged and answered as INTERNAL without details.
 */
import { GraphQLError } from 'graphql';
import { type ErrorCode, HornbillError, isHornbillError } from '../../errors.ts';
import type { Kind } from '../../resources/index.ts';
import { nameProblem } from '../../resources/validation.ts';
import { builder, UserErrorRef } from '../builder.ts';
import type { GraphQLContext } from '../context.ts';

export interface UserError {
  code: string;
  message: string;
  field?: string;
}

export interface Payload<T> {
  value?: T | null;
  errors: UserError[];
}

/** `VolumePayload { volume: Volume, errors: [UserError!]! }` and the like. */
export function payloadType<T extends object>(
  name: string,
  fieldName: string,
  // biome-ignore lint/suspicious/noExplicitAny: any object reference of the builder
  objectRef: any,
  description: string,
) {
  return builder.objectRef<Payload<T>>(name).implement({
    description,
    fields: (t) => ({
      [fieldName]: t.field({
        type: objectRef,
        nullable: true,
        // biome-ignore lint/suspicious/noExplicitAny: the reference's own type
        resolve: (payload: Payload<T>) => (payload.value ?? null) as any,
      }),
      errors: t.field({ type: [UserErrorRef], resolve: (payload) => payload.errors }),
    }),
  });
}

/**
 * The argument a store field belongs to: `spec.size` → `size` (or `input.size` with the
 * prefix `input.`), `metadata.name` → the `name` argument; `spec.disks[d1].path` → `path`
 * with `stripPrefix` `spec.disks[d1].`.
 */
export function argumentField(field: unknown, prefix = '', stripPrefix = 'spec.'): string | undefined {
  if (typeof field !== 'string') return undefined;
  if (field === 'metadata.name') return `${prefix}name`;
  if (field.startsWith(stripPrefix)) return `${prefix}${field.slice(stripPrefix.length)}`;
  if (field.startsWith('spec.')) return `${prefix}${field.slice('spec.'.length)}`;
  return field;
}

/** Throws INVALID_ARGUMENT (with the argument name) when `name` is not a valid name of `kind`. */
export function checkName(kind: Kind, name: string, field: string): void {
  const problem = nameProblem(kind, name);
  if (problem !== undefined) {
    const shown = name.length > 64 ? `${JSON.stringify(name.slice(0, 64))}...` : JSON.stringify(name);
    throw new HornbillError('INVALID_ARGUMENT', `${field} ${shown}: ${problem}`, { field });
  }
}

/** A HornbillError that names the argument at fault. */
export function argumentError(code: ErrorCode, message: string, field?: string): HornbillError {
  return new HornbillError(code, message, field === undefined ? {} : { field });
}

/**
 * Runs a mutation: its result as the payload value, or its HornbillError as payload errors
 * (details.field mapped to an argument by `mapField`). GraphQL errors (refusals) pass on;
 * anything else is logged and becomes INTERNAL.
 */
export async function runMutation<T>(
  context: GraphQLContext,
  mutation: string,
  operation: () => Promise<T | null | undefined>,
  mapField: (field: unknown) => string | undefined = (field) => argumentField(field),
): Promise<Payload<T>> {
  try {
    const value = await operation();
    context.log({
      level: 'info',
      component: 'graphql',
      message: 'mutation',
      mutation,
      token: context.tokenName,
    });
    return { value, errors: [] };
  } catch (error) {
    if (error instanceof GraphQLError) throw error;
    if (isHornbillError(error)) {
      const field = mapField(error.details.field);
      return {
        errors: [{ code: error.code, message: error.message, ...(field === undefined ? {} : { field }) }],
      };
    }
    context.log({
      level: 'error',
      component: 'graphql',
      message: 'mutation failed unexpectedly',
      mutation,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    return { errors: [{ code: 'INTERNAL', message: 'internal error; the manager log has the details' }] };
  }
}
