/**
 * The write side of one embedded-store transaction: every object write goes through
 * `write` or `remove`, which assign the next resourceVersion, keep the uid and owner
 * indexes in step, and append to the change log — so the log, the objects and the indexes
 * can never disagree (they commit together or not at all).
 */
import { assert } from '../../assert.ts';
import type { OwnerReference } from '../api.ts';
import {
  type ChangeRecord,
  objectKey,
  type StateDatabase,
  type StateRecord,
  type StoredObject,
} from './embedded-database.ts';

export function keyOfStored(object: StoredObject): string {
  return objectKey(object.kind, object.metadata.namespace, object.metadata.name);
}

function ownerUids(object: StoredObject | undefined): Set<string> {
  return new Set((object?.metadata.ownerReferences ?? []).map((reference) => reference.uid));
}

export class StateTransaction {
  readonly database: StateDatabase;
  /** The counters, advanced as this transaction writes. */
  readonly state: StateRecord;
  readonly nowMilliseconds: number;
  private readonly changeLogLimit: number;
  /** Objects removed in this transaction, by key (what a caller returns for them). */
  readonly removed = new Map<string, StoredObject>();
  wroteEvents = false;

  constructor(
    database: StateDatabase,
    state: StateRecord,
    options: { nowMilliseconds: number; changeLogLimit: number },
  ) {
    this.database = database;
    this.state = state;
    this.nowMilliseconds = options.nowMilliseconds;
    this.changeLogLimit = options.changeLogLimit;
  }

  get(key: string): StoredObject | undefined {
    return this.database.getObject(key);
  }

  /** The owner a reference names, if that incarnation (uid) still exists in `namespace`. */
  ownerOf(reference: OwnerReference, namespace: string): StoredObject | undefined {
    const key = this.database.objectKeyOfUid(reference.uid);
    if (key !== objectKey(reference.kind, namespace, reference.name)) return undefined;
    return this.get(key);
  }

  /** Objects whose ownerReferences name `ownerUid`. */
  dependentsOf(ownerUid: string): StoredObject[] {
    const dependents: StoredObject[] = [];
    for (const key of this.database.dependentKeys(ownerUid)) {
      const dependent = this.get(key);
      assert(dependent !== undefined, `owner index names ${key}, which does not exist`);
      dependents.push(dependent);
    }
    return dependents;
  }

  /** Stores `object` as a new version (ADDED or MODIFIED) and returns it with its resourceVersion. */
  write(type: 'ADDED' | 'MODIFIED', object: StoredObject, previous?: StoredObject): StoredObject {
    assert(
      (type === 'ADDED') === (previous === undefined),
      'ADDED has no previous version; MODIFIED has one',
    );
    const revision = ++this.state.revision;
    const stored: StoredObject = {
      ...object,
      metadata: { ...object.metadata, resourceVersion: String(revision) },
    };
    const key = keyOfStored(stored);
    this.database.putObject(key, stored);
    if (previous === undefined) this.database.putUid(stored.metadata.uid, key);
    const before = ownerUids(previous);
    const after = ownerUids(stored);
    for (const uid of before) if (!after.has(uid)) this.database.removeDependent(uid, key);
    for (const uid of after) if (!before.has(uid)) this.database.putDependent(uid, key);
    const change: ChangeRecord = { type, key, object: stored };
    if (previous !== undefined) change.previousLabels = previous.metadata.labels ?? {};
    this.database.putChange(revision, change);
    return stored;
  }

  /** Removes `object` (its current version) and logs DELETED with a new resourceVersion. */
  remove(object: StoredObject): StoredObject {
    const key = keyOfStored(object);
    const revision = ++this.state.revision;
    const final: StoredObject = {
      ...object,
      metadata: { ...object.metadata, resourceVersion: String(revision) },
    };
    this.database.removeObject(key);
    this.database.removeUid(object.metadata.uid);
    for (const uid of ownerUids(object)) this.database.removeDependent(uid, key);
    this.database.putChange(revision, { type: 'DELETED', key, object: final });
    this.removed.set(key, final);
    return final;
  }

  /** Compacts the change log to its limit and records the counters; the last step of a transaction. */
  finish(): void {
    while (this.state.revision - this.state.compactedRevision > this.changeLogLimit) {
      this.database.removeChange(++this.state.compactedRevision);
    }
    this.database.putState(this.state);
  }
}
