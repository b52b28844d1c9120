/**
 * Deletion and garbage collection with Kubernetes semantics, done synchronously inside the
 * transaction that removes the owner (the API server's garbage collector does the same
 * asynchronously): when an object is removed, each dependent whose owner references now all
 * point at absent owners is deleted in turn (background propagation), and dependents that
 * keep another owner lose the dangling reference. Foreground deletion keeps the owner, with
 * the `foregroundDeletion` finalizer, until its blocking dependents are gone.
 */
import { formatTimestamp, type ObjectMeta } from '../api.ts';
import type { StoredObject } from './embedded-database.ts';
import { keyOfStored, type StateTransaction } from './embedded-transaction.ts';
import { FOREGROUND_DELETION_FINALIZER, type PropagationPolicy } from './types.ts';

function hasBlockingDependents(transaction: StateTransaction, owner: StoredObject): boolean {
  return transaction
    .dependentsOf(owner.metadata.uid)
    .some((dependent) =>
      dependent.metadata.ownerReferences?.some(
        (reference) => reference.uid === owner.metadata.uid && reference.blockOwnerDeletion === true,
      ),
    );
}

/** Orphan policy: dependents drop their reference to `owner` and stay. */
function orphanDependents(transaction: StateTransaction, owner: StoredObject): void {
  for (const dependent of transaction.dependentsOf(owner.metadata.uid)) {
    const references = (dependent.metadata.ownerReferences ?? []).filter(
      (reference) => reference.uid !== owner.metadata.uid,
    );
    const metadata: ObjectMeta = { ...dependent.metadata, ownerReferences: references };
    if (references.length === 0) delete metadata.ownerReferences;
    transaction.write('MODIFIED', { ...dependent, metadata }, dependent);
  }
}

/**
 * Deletes `object` (its current version): removed at once when nothing holds it, otherwise
 * marked with deletionTimestamp (generation bumped) until its finalizers are removed.
 */
export function deleteStored(
  transaction: StateTransaction,
  object: StoredObject,
  policy: PropagationPolicy,
): void {
  if (object.metadata.deletionTimestamp !== undefined) return;
  if (policy === 'Orphan') orphanDependents(transaction, object);
  const current = transaction.get(keyOfStored(object)) ?? object;
  const dependents = policy === 'Foreground' ? transaction.dependentsOf(current.metadata.uid) : [];
  const finalizers = [...(current.metadata.finalizers ?? [])];
  if (dependents.length > 0 && !finalizers.includes(FOREGROUND_DELETION_FINALIZER)) {
    finalizers.push(FOREGROUND_DELETION_FINALIZER);
  }
  if (finalizers.length === 0) {
    collectGarbage(transaction, current);
    return;
  }
  const marked = transaction.write(
    'MODIFIED',
    {
      ...current,
      metadata: {
        ...current.metadata,
        finalizers,
        deletionTimestamp: formatTimestamp(transaction.nowMilliseconds),
        generation: current.metadata.generation + 1,
      },
    },
    current,
  );
  if (dependents.length === 0) return;
  for (const dependent of dependents) {
    const latest = transaction.get(keyOfStored(dependent));
    if (latest !== undefined) deleteStored(transaction, latest, 'Background');
  }
  const owner = transaction.get(keyOfStored(marked));
  if (owner !== undefined) finishForegroundDeletion(transaction, owner, undefined);
}

/**
 * Removes the foregroundDeletion finalizer of `owner` once no blocking dependent is left; an
 * owner with no finalizer left is removed (through `queue` when collectGarbage is running).
 */
function finishForegroundDeletion(
  transaction: StateTransaction,
  owner: StoredObject,
  queue: StoredObject[] | undefined,
): void {
  const finalizers = owner.metadata.finalizers ?? [];
  if (owner.metadata.deletionTimestamp === undefined || !finalizers.includes(FOREGROUND_DELETION_FINALIZER))
    return;
  if (hasBlockingDependents(transaction, owner)) return;
  const remaining = finalizers.filter((finalizer) => finalizer !== FOREGROUND_DELETION_FINALIZER);
  const metadata: ObjectMeta = { ...owner.metadata, finalizers: remaining };
  if (remaining.length === 0) {
    delete metadata.finalizers;
    if (queue === undefined) collectGarbage(transaction, { ...owner, metadata });
    else queue.push({ ...owner, metadata });
    return;
  }
  transaction.write('MODIFIED', { ...owner, metadata }, owner);
}

/**
 * Removes `object` and everything that goes with it: dependents left without a living owner
 * (deleted, or marked when finalizers hold them), dangling references of dependents that
 * keep another owner, and foreground owners that were waiting for this object. A work queue,
 * not recursion: a deep ownership chain cannot overflow the stack.
 */
export function collectGarbage(transaction: StateTransaction, object: StoredObject): void {
  const queue: StoredObject[] = [object];
  while (queue.length > 0) {
    const next = queue.shift() as StoredObject;
    if (transaction.get(keyOfStored(next)) === undefined) continue;
    const removed = transaction.remove(next);
    for (const dependent of transaction.dependentsOf(removed.metadata.uid)) {
      const references = dependent.metadata.ownerReferences ?? [];
      const living = references.filter(
        (reference) => transaction.ownerOf(reference, dependent.metadata.namespace) !== undefined,
      );
      if (living.length > 0) {
        transaction.write(
          'MODIFIED',
          { ...dependent, metadata: { ...dependent.metadata, ownerReferences: living } },
          dependent,
        );
      } else if ((dependent.metadata.finalizers ?? []).length === 0) {
        queue.push(dependent);
      } else {
        deleteStored(transaction, dependent, 'Background');
      }
    }
    for (const reference of removed.metadata.ownerReferences ?? []) {
      const owner = transaction.ownerOf(reference, removed.metadata.namespace);
      if (owner !== undefined) finishForegroundDeletion(transaction, owner, queue);
    }
  }
}

/**
 * After a create or an owner-reference change: an object whose owners are all absent is
 * collected (as the garbage collector would, a moment later); references to absent owners
 * are dropped when a living owner remains.
 */
export function pruneOwnerReferences(transaction: StateTransaction, object: StoredObject): void {
  const references = object.metadata.ownerReferences ?? [];
  if (references.length === 0) return;
  const living = references.filter((reference) => transaction.ownerOf(reference, object.metadata.namespace));
  if (living.length === references.length) return;
  if (living.length > 0) {
    transaction.write(
      'MODIFIED',
      { ...object, metadata: { ...object.metadata, ownerReferences: living } },
      object,
    );
  } else {
    deleteStored(transaction, object, 'Background');
  }
}
