/**
 * The admission the Kubernetes backend runs before a request: the same checks, with the same
 * RESOURCE_INVALID fields, as embedded-operations.ts runs inside its transaction, so both
 * backends refuse the same input. Pure: the stored object is passed in.
 */
import { HornbillError } from '../../errors.ts';
import { describeKey, type ObjectKey, type ObjectMeta } from '../api.ts';
import { applyMergePatch, isPlainObject, type JsonObject } from '../json.ts';
import { type AnyResource, isKind, type Kind } from '../registry.ts';
import { type FieldError, validateValue } from '../schema.ts';
import { admitUpdate, definitionOf, invalid } from '../validation.ts';
import { settableMetadata } from './kubernetes-requests.ts';
import type { PatchOptions } from './types.ts';

export function checkKind(kind: unknown): asserts kind is Kind {
  if (!isKind(kind)) {
    throw new HornbillError('INVALID_ARGUMENT', `${JSON.stringify(kind)} is not a Hornbill kind`, { kind });
  }
}

export function checkKey(key: ObjectKey): void {
  checkKind(key?.kind);
  if (
    typeof key.namespace !== 'string' ||
    key.namespace === '' ||
    typeof key.name !== 'string' ||
    key.name === ''
  ) {
    throw new HornbillError('INVALID_ARGUMENT', 'an object key needs kind, namespace and name', { ...key });
  }
}

/** The key a request body names, or RESOURCE_INVALID (as the embedded store reports it). */
export function keyOfRequest(value: unknown): ObjectKey<Kind> {
  const metadata = isPlainObject(value) && isPlainObject(value.metadata) ? value.metadata : {};
  const kind = isPlainObject(value) ? value.kind : undefined;
  if (!isKind(kind) || typeof metadata.namespace !== 'string' || typeof metadata.name !== 'string') {
    throw invalid({}, [
      { field: 'metadata', reason: 'kind, metadata.namespace and metadata.name are required' },
    ]);
  }
  return { kind, namespace: metadata.namespace, name: metadata.name };
}

/** PUT without a resourceVersion is an unconditional write on Kubernetes: refuse it. */
export function requireResourceVersion(key: ObjectKey, version: unknown): void {
  if (typeof version !== 'string' || version === '') {
    throw invalid(key, [{ field: 'metadata.resourceVersion', reason: 'must be specified for an update' }]);
  }
}

export function checkPreconditions(key: ObjectKey, request: JsonObject, stored: AnyResource): void {
  const version = request.resourceVersion;
  if (version !== stored.metadata.resourceVersion) {
    throw new HornbillError(
      'RESOURCE_CONFLICT',
      `${describeKey(key)} has been modified (resourceVersion ${stored.metadata.resourceVersion}, not ${String(version)}); read it again and retry`,
      { ...key, expected: version, actual: stored.metadata.resourceVersion },
    );
  }
  if (request.uid !== undefined && request.uid !== stored.metadata.uid) {
    throw new HornbillError(
      'RESOURCE_CONFLICT',
      `${describeKey(key)} was deleted and created again (uid changed)`,
      {
        ...key,
        expected: request.uid,
        actual: stored.metadata.uid,
      },
    );
  }
}

/** The stored object's fixed metadata with the request's settable fields. */
export function mergedMetadata(stored: ObjectMeta, request: JsonObject): ObjectMeta {
  const metadata = {
    name: stored.name,
    namespace: stored.namespace,
    uid: stored.uid,
    resourceVersion: stored.resourceVersion,
    generation: stored.generation,
    creationTimestamp: stored.creationTimestamp,
    ...settableMetadata(request),
  } as ObjectMeta;
  if (stored.deletionTimestamp !== undefined) metadata.deletionTimestamp = stored.deletionTimestamp;
  return metadata;
}

export function checkNoNewFinalizers(key: ObjectKey, stored: AnyResource, next: AnyResource): void {
  if (stored.metadata.deletionTimestamp === undefined) return;
  const added = (next.metadata.finalizers ?? []).filter(
    (finalizer) => !(stored.metadata.finalizers ?? []).includes(finalizer),
  );
  if (added.length > 0) {
    throw invalid(key, [
      {
        field: 'metadata.finalizers',
        reason: `no new finalizers (${added.join(', ')}) while the object is being deleted`,
      },
    ]);
  }
}

/** The status schema check (the kinds' cross-field rules concern spec only). */
export function admitStatus(key: ObjectKey<Kind>, status: unknown): void {
  if (status === undefined) return;
  const errors: FieldError[] = [];
  validateValue(status, definitionOf(key.kind).status, 'status', errors);
  if (errors.length > 0) throw invalid(key, errors);
}

/** What a merge patch makes of `stored`, admitted as the embedded store admits it. */
export function patchedObject(
  key: ObjectKey<Kind>,
  stored: AnyResource,
  patch: JsonObject,
  options: PatchOptions,
): AnyResource {
  const merged = applyMergePatch(stored, patch) as JsonObject & { metadata: JsonObject };
  for (const field of ['name', 'namespace', 'uid'] as const) {
    if (merged.metadata?.[field] !== stored.metadata[field]) {
      throw invalid(key, [{ field: `metadata.${field}`, reason: 'cannot be changed' }]);
    }
  }
  if (merged.kind !== stored.kind || merged.apiVersion !== stored.apiVersion) {
    throw invalid(key, [{ field: 'kind', reason: 'kind and apiVersion cannot be changed' }]);
  }
  if (options.subresource === 'status') {
    admitStatus(key, merged.status);
    const next = { ...stored } as JsonObject;
    if (merged.status === undefined) delete next.status;
    else next.status = merged.status;
    return next as unknown as AnyResource;
  }
  const candidate = {
    apiVersion: stored.apiVersion,
    kind: stored.kind,
    metadata: mergedMetadata(stored.metadata, merged.metadata),
    spec: merged.spec,
    status: stored.status,
  };
  const admitted = admitUpdate(candidate, stored as never) as unknown as AnyResource;
  checkNoNewFinalizers(key, stored, admitted);
  return admitted;
}
