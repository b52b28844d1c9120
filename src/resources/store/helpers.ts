/** Small helpers that controllers need around any ResourceStore. */
import { isHornbillError } from '../../errors.ts';
import type { ObjectKey } from '../api.ts';
import type { AnyResource, Kind, ResourceOf } from '../registry.ts';
import type { ResourceStore } from './types.ts';

/** Attempts of retryOnConflict before the conflict is passed on. */
export const DEFAULT_CONFLICT_ATTEMPTS = 5;

/** The object, or undefined when it does not exist. */
export async function findResource<K extends Kind>(
  store: ResourceStore,
  key: ObjectKey<K>,
): Promise<ResourceOf<K> | undefined> {
  try {
    return await store.get(key);
  } catch (error) {
    if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
    throw error;
  }
}

/**
 * Runs `operation` (which should read, modify and write) again while it fails with
 * RESOURCE_CONFLICT, up to `attempts` times.
 */
export async function retryOnConflict<T>(
  operation: () => Promise<T>,
  options: { attempts?: number } = {},
): Promise<T> {
  const attempts = options.attempts ?? DEFAULT_CONFLICT_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= attempts || !isHornbillError(error, 'RESOURCE_CONFLICT')) throw error;
    }
  }
}

export function isBeingDeleted(object: AnyResource): boolean {
  return object.metadata.deletionTimestamp !== undefined;
}

export function hasFinalizer(object: AnyResource, finalizer: string): boolean {
  return object.metadata.finalizers?.includes(finalizer) ?? false;
}

/** Adds `finalizer` unless present (no write then). RESOURCE_INVALID while the object is being deleted. */
export function addFinalizer<K extends Kind>(
  store: ResourceStore,
  key: ObjectKey<K>,
  finalizer: string,
): Promise<ResourceOf<K>> {
  return retryOnConflict(async () => {
    const object = await store.get(key);
    if (hasFinalizer(object, finalizer)) return object;
    const metadata = { ...object.metadata, finalizers: [...(object.metadata.finalizers ?? []), finalizer] };
    return store.update({ ...object, metadata } as ResourceOf<K>);
  });
}

/**
 * Removes `finalizer` if present. Returns the object, or undefined when it is gone (this
 * removal released it, or it did not exist).
 */
export function removeFinalizer<K extends Kind>(
  store: ResourceStore,
  key: ObjectKey<K>,
  finalizer: string,
): Promise<ResourceOf<K> | undefined> {
  return retryOnConflict(async () => {
    const object = await findResource(store, key);
    if (object === undefined || !hasFinalizer(object, finalizer)) return object;
    const finalizers = (object.metadata.finalizers ?? []).filter((item) => item !== finalizer);
    const updated = await store.update({
      ...object,
      metadata: { ...object.metadata, finalizers },
    } as ResourceOf<K>);
    return isBeingDeleted(updated) && finalizers.length === 0 ? undefined : updated;
  });
}
