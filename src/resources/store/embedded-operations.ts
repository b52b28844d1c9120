/**
 * What the API server does for each verb, for the embedded store: which fields a request
 * may change, when generation moves, optimistic concurrency, finalizers and deletion. Every
 * function runs inside one transaction (src/resources/store/embedded-transaction.ts).
 */
import { HornbillError } from '../../errors.ts';
import { API_GROUP_VERSION, describeKey, formatTimestamp, type ObjectKey, type ObjectMeta } from '../api.ts';
import { applyMergePatch, isPlainObject, type JsonObject, jsonEqual } from '../json.ts';
import { isKind } from '../registry.ts';
import { admitCreate, admitUpdate, invalid } from '../validation.ts';
import { objectKey, type StoredObject } from './embedded-database.ts';
import { collectGarbage, deleteStored, pruneOwnerReferences } from './embedded-garbage-collection.ts';
import { keyOfStored, type StateTransaction } from './embedded-transaction.ts';
import type { DeleteOptions, DeleteResult, PatchOptions } from './types.ts';

/** How many names generateName tries before it reports a conflict. */
const GENERATE_NAME_ATTEMPTS = 8;

export interface Identity {
  newUid(): string;
  /** Five characters for generateName. */
  newSuffix(): string;
}

function notFound(key: ObjectKey): HornbillError {
  return new HornbillError('RESOURCE_NOT_FOUND', `${describeKey(key)} not found`, { ...key });
}

function requireStored(transaction: StateTransaction, key: ObjectKey): StoredObject {
  const stored = transaction.get(objectKey(key.kind, key.namespace, key.name));
  if (stored === undefined) throw notFound(key);
  return stored;
}

/** The key a request body names, or RESOURCE_INVALID. */
function keyOfRequest(value: unknown): ObjectKey {
  const metadata = isPlainObject(value) && isPlainObject(value.metadata) ? value.metadata : {};
  const kind = isPlainObject(value) ? value.kind : undefined;
  if (!isKind(kind) || typeof metadata.namespace !== 'string' || typeof metadata.name !== 'string') {
    throw invalid({}, [
      { field: 'metadata', reason: 'kind, metadata.namespace and metadata.name are required' },
    ]);
  }
  return { kind, namespace: metadata.namespace, name: metadata.name };
}

/** Checks the request's resourceVersion (required) and uid (if given) against the stored object. */
function checkPreconditions(key: ObjectKey, request: JsonObject, stored: StoredObject): void {
  const version = request.resourceVersion;
  if (typeof version !== 'string' || version === '') {
    throw invalid(key, [{ field: 'metadata.resourceVersion', reason: 'must be specified for an update' }]);
  }
  if (version !== stored.metadata.resourceVersion) {
    throw new HornbillError(
      'RESOURCE_CONFLICT',
      `${describeKey(key)} has been modified (resourceVersion ${stored.metadata.resourceVersion}, not ${version}); read it again and retry`,
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

/**
 * The client-settable metadata of a request, empty collections dropped (the API server omits
 * them). Values of the wrong type pass through unchanged, for validation to report.
 */
function settableMetadata(request: JsonObject): Partial<ObjectMeta> {
  const metadata: JsonObject = {};
  for (const field of ['labels', 'annotations']) {
    const value = request[field];
    if (value === undefined || (isPlainObject(value) && Object.keys(value).length === 0)) continue;
    metadata[field] = isPlainObject(value) ? { ...value } : value;
  }
  for (const field of ['finalizers', 'ownerReferences']) {
    const value = request[field];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    metadata[field] = Array.isArray(value)
      ? value.map((item: unknown) => (isPlainObject(item) ? { ...item } : item))
      : value;
  }
  return metadata as Partial<ObjectMeta>;
}

/** The stored object's fixed metadata with the request's settable fields. */
function mergedMetadata(stored: ObjectMeta, request: JsonObject): ObjectMeta {
  const metadata: ObjectMeta = {
    name: stored.name,
    namespace: stored.namespace,
    uid: stored.uid,
    resourceVersion: stored.resourceVersion,
    generation: stored.generation,
    creationTimestamp: stored.creationTimestamp,
    ...settableMetadata(request),
  };
  if (stored.deletionTimestamp !== undefined) metadata.deletionTimestamp = stored.deletionTimestamp;
  return metadata;
}

/**
 * Writes `next` over `stored`: nothing when nothing changed; removal when deletion is under
 * way and no finalizer is left; otherwise a new version, and garbage collection when the
 * owner references changed. Returns the object as it is after the transaction.
 */
function commitChange(transaction: StateTransaction, stored: StoredObject, next: StoredObject): StoredObject {
  if (!jsonEqual(next.spec, stored.spec)) next.metadata.generation = stored.metadata.generation + 1;
  if (jsonEqual(next, stored)) return stored;
  const key = keyOfStored(stored);
  if (next.metadata.deletionTimestamp !== undefined && (next.metadata.finalizers ?? []).length === 0) {
    collectGarbage(transaction, next);
    return transaction.removed.get(key) ?? next;
  }
  const written = transaction.write('MODIFIED', next, stored);
  if (!jsonEqual(written.metadata.ownerReferences, stored.metadata.ownerReferences)) {
    pruneOwnerReferences(transaction, written);
  }
  return transaction.get(key) ?? transaction.removed.get(key) ?? written;
}

export function createObject(
  transaction: StateTransaction,
  request: unknown,
  identity: Identity,
): StoredObject {
  const { kind, metadata, spec } = admitCreate(request);
  const namespace = metadata.namespace as string;
  let name = metadata.name as string | undefined;
  for (let attempt = 0; name === undefined && attempt < GENERATE_NAME_ATTEMPTS; attempt++) {
    const candidate = `${metadata.generateName as string}${identity.newSuffix()}`;
    if (transaction.get(objectKey(kind, namespace, candidate)) === undefined) name = candidate;
  }
  const key = { kind, namespace, name: name ?? `${metadata.generateName}*` };
  if (name === undefined || transaction.get(objectKey(kind, namespace, name)) !== undefined) {
    throw new HornbillError('RESOURCE_ALREADY_EXISTS', `${describeKey(key)} already exists`, { ...key });
  }
  const object: StoredObject = {
    apiVersion: API_GROUP_VERSION,
    kind,
    metadata: {
      name,
      namespace,
      uid: identity.newUid(),
      resourceVersion: '',
      generation: 1,
      creationTimestamp: formatTimestamp(transaction.nowMilliseconds),
      ...settableMetadata(metadata),
    },
    spec,
  };
  const written = transaction.write('ADDED', object);
  if (written.metadata.ownerReferences !== undefined) pruneOwnerReferences(transaction, written);
  const stored = objectKey(kind, namespace, name);
  return transaction.get(stored) ?? transaction.removed.get(stored) ?? written;
}

export function updateObject(transaction: StateTransaction, request: unknown): StoredObject {
  const key = keyOfRequest(request);
  const stored = requireStored(transaction, key);
  const requestMetadata = (request as { metadata: JsonObject }).metadata;
  checkPreconditions(key, requestMetadata, stored);
  const candidate = {
    apiVersion: API_GROUP_VERSION,
    kind: stored.kind,
    metadata: mergedMetadata(stored.metadata, requestMetadata),
    spec: (request as JsonObject).spec,
    status: stored.status,
  };
  const admitted = admitUpdate(candidate, stored) as unknown as StoredObject;
  if (stored.metadata.deletionTimestamp !== undefined) {
    const added = (admitted.metadata.finalizers ?? []).filter(
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
  return commitChange(transaction, stored, admitted);
}

export function updateObjectStatus(transaction: StateTransaction, request: unknown): StoredObject {
  const key = keyOfRequest(request);
  const stored = requireStored(transaction, key);
  checkPreconditions(key, (request as { metadata: JsonObject }).metadata, stored);
  const status = (request as JsonObject).status;
  const candidate: JsonObject = { ...stored };
  if (status === undefined) delete candidate.status;
  else candidate.status = status;
  const admitted = admitUpdate(candidate) as unknown as StoredObject;
  return commitChange(transaction, stored, admitted);
}

export function patchObject(
  transaction: StateTransaction,
  key: ObjectKey,
  patch: unknown,
  options: PatchOptions = {},
): StoredObject {
  if (!isPlainObject(patch)) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `a merge patch of ${describeKey(key)} must be a JSON object`,
      {
        ...key,
      },
    );
  }
  const stored = requireStored(transaction, key);
  const patchMetadata = isPlainObject(patch.metadata) ? patch.metadata : {};
  const version = patchMetadata.resourceVersion;
  const expected = typeof version === 'string' && version !== '' ? version : stored.metadata.resourceVersion;
  checkPreconditions(key, { resourceVersion: expected }, stored);
  const merged = applyMergePatch(stored, patch) as JsonObject & { metadata: JsonObject };
  for (const field of ['name', 'namespace', 'uid'] as const) {
    if (merged.metadata?.[field] !== stored.metadata[field]) {
      throw invalid(key, [{ field: `metadata.${field}`, reason: 'cannot be changed' }]);
    }
  }
  if (merged.kind !== stored.kind || merged.apiVersion !== stored.apiVersion) {
    throw invalid(key, [{ field: 'kind', reason: 'kind and apiVersion cannot be changed' }]);
  }
  const request = {
    ...merged,
    metadata: { ...merged.metadata, resourceVersion: stored.metadata.resourceVersion },
  };
  return options.subresource === 'status'
    ? updateObjectStatus(transaction, { ...stored, status: merged.status })
    : updateObject(transaction, request);
}

export function deleteObject(
  transaction: StateTransaction,
  key: ObjectKey,
  options: DeleteOptions = {},
): DeleteResult<StoredObject> {
  const stored = requireStored(transaction, key);
  const { uid, resourceVersion } = options.preconditions ?? {};
  if (
    (uid !== undefined && uid !== stored.metadata.uid) ||
    (resourceVersion !== undefined && resourceVersion !== stored.metadata.resourceVersion)
  ) {
    throw new HornbillError(
      'RESOURCE_CONFLICT',
      `${describeKey(key)}: the delete preconditions do not hold`,
      {
        ...key,
        preconditions: options.preconditions,
        uid: stored.metadata.uid,
        resourceVersion: stored.metadata.resourceVersion,
      },
    );
  }
  const policy = options.propagationPolicy ?? 'Background';
  if (!['Background', 'Foreground', 'Orphan'].includes(policy)) {
    throw new HornbillError('INVALID_ARGUMENT', `unknown propagationPolicy ${JSON.stringify(policy)}`, {
      policy,
    });
  }
  deleteStored(transaction, stored, policy);
  const storeKey = keyOfStored(stored);
  const now = transaction.get(storeKey);
  return now === undefined
    ? { removed: true, object: transaction.removed.get(storeKey) ?? stored }
    : { removed: false, object: now };
}
