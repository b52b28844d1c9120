/**
 * The embedded ResourceStore: Kubernetes API semantics on one LMDB file, for `hornbill up`.
 *
 * - One writer: a lock file keeps other processes out; in this process every write runs
 *   synchronously in one LMDB transaction, so writes are atomic and strictly ordered.
 * - Durable before acknowledged: a write resolves only after lmdb-js reports its commit
 *   flushed (fsync); reads and watches wait for the same point, so nobody sees a change
 *   that a crash could still take back.
 * - resourceVersion is a global counter (`revision`); every change gets the next value and
 *   an entry in the change log, which keeps the last `changeLogLimit` entries. A watch
 *   resumes from any resourceVersion still in the log — across restarts too — and gets
 *   RESOURCE_GONE for an older one.
 * - Crash-safe: LMDB commits are atomic; on open, the file is checked in a child process
 *   first (embedded-probe.ts), because LMDB can crash on a damaged file.
 *
 * ```ts
 * const store = await openEmbeddedStore({ directory: './hornbill-data/state' });
 * const volume = await store.create({ kind: 'Volume', metadata: { name: 'vol1', namespace }, spec: { size: '2Gi' } });
 * ```
 */
import { randomInt, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fsExtensions from 'fs-native-extensions';
import { HornbillError } from '../../errors.ts';
import type { ObjectKey } from '../api.ts';
import { matchesLabels, toLabelRequirements } from '../labels.ts';
import type { AnyResource, CreateInput, Kind, ResourceOf } from '../registry.ts';
import {
  type ChangeRecord,
  corrupt,
  FORMAT_MAGIC,
  FORMAT_VERSION,
  keyRange,
  objectKey,
  STATE_FILE_NAME,
  StateDatabase,
  type StateRecord,
  type StoredObject,
} from './embedded-database.ts';
import { listEvents, recordEvent } from './embedded-events.ts';
import {
  createObject,
  deleteObject,
  patchObject,
  updateObject,
  updateObjectStatus,
} from './embedded-operations.ts';
import { probeStateFile } from './embedded-probe.ts';
import { StateTransaction } from './embedded-transaction.ts';
import { type VerifyReport, verifyState } from './embedded-verify.ts';
import { EmbeddedWatch } from './embedded-watch.ts';
import type {
  DeleteOptions,
  DeleteResult,
  EventInput,
  EventListOptions,
  ListOptions,
  PatchOptions,
  ResourceEvent,
  ResourceList,
  ResourceStore,
  ResourceWatch,
  WatchOptions,
} from './types.ts';

export const DEFAULT_CHANGE_LOG_LIMIT = 10_000;
export const DEFAULT_EVENT_LIMIT = 5_000;
const LOCK_FILE_NAME = 'lock';
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export interface EmbeddedStoreOptions {
  /** Created if missing; holds `state.mdb` and a lock file. */
  directory: string;
  /** Change-log entries kept for watches (default 10 000); older resourceVersions are gone. */
  changeLogLimit?: number;
  /** Events kept (default 5 000); the least recently seen go first. */
  eventLimit?: number;
  /** Check the file in a child process before opening it (default true). */
  probe?: boolean;
  /** Milliseconds since the epoch (default Date.now), for timestamps. */
  clock?: () => number;
  /** For uids (default crypto.randomUUID). */
  newUid?: () => string;
}

function acquireLock(directory: string): number {
  const fd = fs.openSync(path.join(directory, LOCK_FILE_NAME), fs.constants.O_RDWR | fs.constants.O_CREAT);
  if (!fsExtensions.tryLock(fd)) {
    fs.closeSync(fd);
    throw new HornbillError('RESOURCE_STORE_LOCKED', `state store ${directory} is already open`, {
      directory,
    });
  }
  return fd;
}

function parseResourceVersion(text: string): number {
  if (!/^\d{1,15}$/.test(text)) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `resourceVersion ${JSON.stringify(text)} is not one this store issued`,
      {
        resourceVersion: text,
      },
    );
  }
  return Number(text);
}

/** Opens (or creates) the store in `options.directory`. */
export async function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<EmbeddedResourceStore> {
  const directory = path.resolve(options.directory);
  fs.mkdirSync(directory, { recursive: true });
  const lockFd = acquireLock(directory);
  let database: StateDatabase | undefined;
  try {
    const filePath = path.join(directory, STATE_FILE_NAME);
    if (fs.existsSync(filePath) && (options.probe ?? true)) probeStateFile(filePath);
    database = StateDatabase.open(filePath);
    const opened = database;
    const format = database.readFormat();
    if (format === undefined) {
      if (!database.allObjects().next().done)
        throw corrupt(filePath, 'objects are stored but the format record is missing');
      database.transaction(() => {
        opened.putFormat();
        opened.putState({ revision: 0, compactedRevision: 0, eventSequence: 0, eventCount: 0 });
      });
      await database.flushed();
    } else if (format.magic !== FORMAT_MAGIC || format.version !== FORMAT_VERSION) {
      throw corrupt(
        filePath,
        `written in format ${JSON.stringify(format)}, not ${FORMAT_MAGIC} ${FORMAT_VERSION}`,
      );
    }
    const state = database.readState();
    if (state === undefined || state.compactedRevision > state.revision) {
      throw corrupt(filePath, `the state record ${JSON.stringify(state)} is not valid`);
    }
    return new EmbeddedResourceStore(directory, database, lockFd, state, options);
  } catch (error) {
    await database?.close();
    fs.closeSync(lockFd);
    throw error;
  }
}

export class EmbeddedResourceStore implements ResourceStore {
  readonly backend = 'embedded';
  readonly directory: string;
  private readonly database: StateDatabase;
  private readonly lockFd: number;
  private readonly changeLogLimit: number;
  private readonly eventLimit: number;
  private readonly clock: () => number;
  private readonly newUid: () => string;
  /** Counters as of the last committed transaction. */
  private state: StateRecord;
  /** Every change up to here is on disk; reads and watches see no further. */
  private durableRevision: number;
  private readonly subscribers = new Set<() => void>();
  private closed = false;
  private failure: HornbillError | undefined;

  constructor(
    directory: string,
    database: StateDatabase,
    lockFd: number,
    state: StateRecord,
    options: EmbeddedStoreOptions,
  ) {
    this.directory = directory;
    this.database = database;
    this.lockFd = lockFd;
    this.state = state;
    this.durableRevision = state.revision;
    this.changeLogLimit = Math.max(1, options.changeLogLimit ?? DEFAULT_CHANGE_LOG_LIMIT);
    this.eventLimit = Math.max(1, options.eventLimit ?? DEFAULT_EVENT_LIMIT);
    this.clock = options.clock ?? Date.now;
    this.newUid = options.newUid ?? randomUUID;
  }

  /** The last resourceVersion issued (embedded only: versions are this counter). */
  get revision(): number {
    return this.state.revision;
  }

  /** The oldest resourceVersion a watch can still start from. */
  get compactedRevision(): number {
    return this.state.compactedRevision;
  }

  private checkUsable(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed)
      throw new HornbillError('RESOURCE_STORE_CLOSED', `state store ${this.directory} is closed`);
  }

  /** Waits until every committed change is on disk; a failed flush stops the store. */
  private async flushCommitted(): Promise<void> {
    const target = this.state.revision;
    try {
      await this.database.flushed();
    } catch (error) {
      this.failure = new HornbillError(
        'RESOURCE_STORE_FAILED',
        `state store ${this.directory}: a commit did not reach the disk: ${(error as Error).message}`,
        { directory: this.directory },
        { cause: error },
      );
      this.wakeWatches();
      throw this.failure;
    }
    if (target > this.durableRevision) {
      this.durableRevision = target;
      this.wakeWatches();
    }
  }

  /**
   * Runs `read` once every committed change is on disk, in the same synchronous step as the
   * check, so that no write can slip in between (an `await` would let one).
   */
  private async whenDurable<T>(read: () => T): Promise<T> {
    for (;;) {
      this.checkUsable();
      if (this.state.revision === this.durableRevision) return read();
      await this.flushCommitted();
    }
  }

  private wakeWatches(): void {
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const wake of subscribers) wake();
  }

  /** Runs `operation` in one transaction and resolves once it is durable. */
  private async mutate<T>(operation: (transaction: StateTransaction) => T): Promise<T> {
    this.checkUsable();
    const state = { ...this.state };
    const transaction = new StateTransaction(this.database, state, {
      nowMilliseconds: this.clock(),
      changeLogLimit: this.changeLogLimit,
    });
    const result = this.database.transaction(() => {
      const value = operation(transaction);
      if (state.revision !== this.state.revision || transaction.wroteEvents) transaction.finish();
      return value;
    });
    this.state = state;
    if (transaction.wroteEvents) await this.flushCommitted();
    return this.whenDurable(() => result);
  }

  private identity() {
    return {
      newUid: this.newUid,
      newSuffix: () =>
        Array.from({ length: 5 }, () => NAME_ALPHABET[randomInt(NAME_ALPHABET.length)]).join(''),
    };
  }

  async get<K extends Kind>(key: ObjectKey<K>): Promise<ResourceOf<K>> {
    const object = await this.whenDurable(() =>
      this.database.getObject(objectKey(key.kind, key.namespace, key.name)),
    );
    if (object === undefined) {
      throw new HornbillError('RESOURCE_NOT_FOUND', `${key.kind} ${key.namespace}/${key.name} not found`, {
        ...key,
      });
    }
    return object as unknown as ResourceOf<K>;
  }

  async list<K extends Kind>(kind: K, options: ListOptions = {}): Promise<ResourceList<ResourceOf<K>>> {
    const requirements = toLabelRequirements(options.labelSelector);
    return this.whenDurable(() => {
      const items: StoredObject[] = [];
      for (const object of this.database.objectsInRange(keyRange(kind, options.namespace))) {
        if (matchesLabels(requirements, object.metadata.labels)) items.push(object);
      }
      return { items: items as unknown as ResourceOf<K>[], resourceVersion: String(this.durableRevision) };
    });
  }

  create<K extends Kind>(object: CreateInput<K>): Promise<ResourceOf<K>> {
    return this.mutate((transaction) =>
      createObject(transaction, object, this.identity()),
    ) as unknown as Promise<ResourceOf<K>>;
  }

  update<T extends AnyResource>(object: T): Promise<T> {
    return this.mutate((transaction) => updateObject(transaction, object)) as unknown as Promise<T>;
  }

  updateStatus<T extends AnyResource>(object: T): Promise<T> {
    return this.mutate((transaction) => updateObjectStatus(transaction, object)) as unknown as Promise<T>;
  }

  patch<K extends Kind>(
    key: ObjectKey<K>,
    patch: Record<string, unknown>,
    options: PatchOptions = {},
  ): Promise<ResourceOf<K>> {
    return this.mutate((transaction) => patchObject(transaction, key, patch, options)) as unknown as Promise<
      ResourceOf<K>
    >;
  }

  delete<K extends Kind>(
    key: ObjectKey<K>,
    options: DeleteOptions = {},
  ): Promise<DeleteResult<ResourceOf<K>>> {
    return this.mutate((transaction) => deleteObject(transaction, key, options)) as unknown as Promise<
      DeleteResult<ResourceOf<K>>
    >;
  }

  watch<K extends Kind>(kind: K, options: WatchOptions = {}): ResourceWatch<ResourceOf<K>> {
    const start = async () => {
      const requirements = toLabelRequirements(options.labelSelector);
      const version = options.resourceVersion;
      if (version !== undefined && version !== '' && version !== '0') {
        const after = parseResourceVersion(version);
        if (after > (await this.whenDurable(() => this.durableRevision))) {
          throw new HornbillError(
            'RESOURCE_GONE',
            `resourceVersion ${version} is newer than this store (${this.durableRevision}); list again`,
            {
              resourceVersion: version,
            },
          );
        }
        return { requirements, after, initial: [] };
      }
      const listed = await this.list(kind, options);
      return {
        requirements,
        after: Number(listed.resourceVersion),
        initial: listed.items as unknown as StoredObject[],
      };
    };
    const watch = new EmbeddedWatch(
      {
        readChanges: (after, limit) => this.readChanges(after, limit),
        subscribe: (wake) => this.subscribe(wake),
      },
      { kind, namespace: options.namespace },
      { start, signal: options.signal },
    );
    return watch as unknown as ResourceWatch<ResourceOf<K>>;
  }

  private readChanges(after: number, limit: number): (ChangeRecord & { revision: number })[] {
    this.checkUsable();
    if (after < this.state.compactedRevision) {
      throw new HornbillError(
        'RESOURCE_GONE',
        `resourceVersion ${after} is older than the change log keeps (from ${this.state.compactedRevision}); list again`,
        { resourceVersion: String(after), compactedRevision: String(this.state.compactedRevision) },
      );
    }
    return this.database.changesAfter(after, this.durableRevision, limit);
  }

  private subscribe(wake: () => void): () => void {
    this.subscribers.add(wake);
    return () => this.subscribers.delete(wake);
  }

  recordEvent(input: EventInput): Promise<ResourceEvent> {
    return this.mutate((transaction) =>
      recordEvent(transaction, input, { eventLimit: this.eventLimit, newUid: this.newUid }),
    );
  }

  async listEvents(options: EventListOptions = {}): Promise<ResourceEvent[]> {
    return this.whenDurable(() => listEvents(this.database, options));
  }

  /** Reads every record and checks every invariant (what the open-time probe does). */
  async verify(): Promise<VerifyReport> {
    return this.whenDurable(() => verifyState(this.database));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeWatches();
    try {
      await this.database.flushed();
    } catch {
      // Every acknowledged write already waited for its flush; nothing is owed to anyone here.
    }
    await this.database.close();
    fsExtensions.unlock(this.lockFd);
    fs.closeSync(this.lockFd);
  }
}
