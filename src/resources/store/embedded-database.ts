/**
 * The embedded store's LMDB file (`<directory>/state.mdb`) and its layout:
 *
 * | database     | key                              | value                                  |
 * |--------------|----------------------------------|----------------------------------------|
 * | `meta`       | `format`, `state`                | format magic/version; revision counters |
 * | `objects`    | `<kind>/<namespace>/<name>`      | the object (JSON)                      |
 * | `uids`       | uid                              | the object's key                       |
 * | `dependents` | `<owner uid>|<dependent key>`    | (empty): the owner-reference index     |
 * | `changes`    | resourceVersion (number)         | the change log: type, key, object      |
 * | `events`     | sequence (number)                | a core/v1 Event                        |
 * | `eventKeys`  | sha256 of the Event's identity   | its sequence, for counting repeats     |
 *
 * Every value is JSON followed by a CRC32C of it (4 bytes, little-endian): a damaged record
 * is reported, never trusted. The change log holds one entry per resourceVersion from
 * `compactedRevision + 1` to `revision`, with no gaps.
 */
import { type Database, open, type RootDatabase } from 'lmdb';
import { HornbillError } from '../../errors.ts';
import { crc32c } from '../../native.ts';
import type { ObjectMeta } from '../api.ts';
import type { JsonObject } from '../json.ts';
import type { Kind } from '../registry.ts';
import type { ResourceEvent, WatchEventType } from './types.ts';

export const STATE_FILE_NAME = 'state.mdb';
export const FORMAT_MAGIC = 'hornbill-state';
export const FORMAT_VERSION = 1;

/** An object as the embedded store keeps it. */
export interface StoredObject {
  apiVersion: string;
  kind: Kind;
  metadata: ObjectMeta;
  spec: JsonObject;
  status?: JsonObject;
}

/** One entry of the change log. */
export interface ChangeRecord {
  type: WatchEventType;
  key: string;
  /** The object after the change (for DELETED: as it was removed, with the deletion's resourceVersion). */
  object: StoredObject;
  /** For MODIFIED: the labels before, so that selector watches see objects enter and leave. */
  previousLabels?: Record<string, string>;
}

/** The counters in `meta/state`. */
export interface StateRecord {
  /** The last resourceVersion assigned. */
  revision: number;
  /** Change-log entries up to here are gone; a watch must start at or after it. */
  compactedRevision: number;
  eventSequence: number;
  eventCount: number;
}

export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/**
 * The key range of one kind (or one kind in one namespace). Keys are `<kind>/<namespace>/<name>`
 * and '0' sorts right after '/', so `[prefix, prefix-with-last-'/'-replaced-by-'0')` holds
 * exactly the keys that start with the prefix (names and namespaces contain no '/').
 */
export function keyRange(kind: string, namespace?: string): { start: string; end: string } {
  const prefix = namespace === undefined ? `${kind}/` : `${kind}/${namespace}/`;
  return { start: prefix, end: `${prefix.slice(0, -1)}0` };
}

/** Index keys of one owner: uids hold no '|' (validation) and '}' sorts right after '|'. */
export function dependentRange(ownerUid: string): { start: string; end: string } {
  return { start: `${ownerUid}|`, end: `${ownerUid}}` };
}

export function corrupt(
  filePath: string,
  reason: string,
  details: Record<string, unknown> = {},
): HornbillError {
  return new HornbillError('RESOURCE_STORE_CORRUPT', `state store ${filePath} is damaged: ${reason}`, {
    path: filePath,
    reason,
    ...details,
  });
}

export function encodeRecord(value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value));
  const sealed = Buffer.allocUnsafe(payload.length + 4);
  payload.copy(sealed, 0);
  sealed.writeUInt32LE(crc32c(payload), payload.length);
  return sealed;
}

/** The value of a sealed record; RESOURCE_STORE_CORRUPT when the checksum or JSON is bad. */
export function decodeRecord<T>(sealed: Uint8Array, filePath: string, where: string): T {
  if (sealed.length < 4) throw corrupt(filePath, `${where}: record too short`);
  const buffer = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const payload = buffer.subarray(0, buffer.length - 4);
  if (buffer.readUInt32LE(buffer.length - 4) !== crc32c(payload)) {
    throw corrupt(filePath, `${where}: checksum mismatch`);
  }
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch {
    throw corrupt(filePath, `${where}: not JSON`);
  }
}

const EMPTY = Buffer.alloc(0);
const DATABASE_NAMES = ['meta', 'objects', 'uids', 'dependents', 'changes', 'events', 'eventKeys'];

/** The file exists but no transaction ever committed into it (a crash during the first open). */
export class StateNotInitialized extends Error {
  constructor(filePath: string) {
    super(`state store ${filePath} was never initialized`);
    this.name = 'StateNotInitialized';
  }
}

/** The LMDB environment and its databases; reads here, writes inside `transaction`. */
export class StateDatabase {
  readonly filePath: string;
  private readonly root: RootDatabase;
  private readonly meta: Database<Buffer, string>;
  private readonly objects: Database<Buffer, string>;
  private readonly uids: Database<Buffer, string>;
  private readonly dependents: Database<Buffer, string>;
  private readonly changes: Database<Buffer, number>;
  private readonly events: Database<Buffer, number>;
  private readonly eventKeys: Database<Buffer, string>;

  private constructor(filePath: string, readOnly: boolean) {
    this.filePath = filePath;
    try {
      this.root = open({
        path: filePath,
        maxDbs: 8,
        overlappingSync: false,
        encoding: 'binary',
        cache: false,
        readOnly,
      });
    } catch (error) {
      throw corrupt(filePath, `LMDB cannot open it: ${(error as Error).message}`);
    }
    const databases = DATABASE_NAMES.map(
      (name) => this.root.openDB({ name, encoding: 'binary' }) as Database<Buffer, never> | undefined,
    );
    const missing = databases.filter((database) => database === undefined).length;
    if (missing > 0) {
      // Only a read-only open finds databases missing (a write open creates them).
      void this.root.close();
      if (missing === DATABASE_NAMES.length) throw new StateNotInitialized(filePath);
      throw corrupt(filePath, `${missing} of its ${DATABASE_NAMES.length} databases are missing`);
    }
    [this.meta, this.objects, this.uids, this.dependents, this.changes, this.events, this.eventKeys] =
      databases as never[];
  }

  static open(filePath: string, options: { readOnly?: boolean } = {}): StateDatabase {
    return new StateDatabase(filePath, options.readOnly ?? false);
  }

  private read<T>(
    database: Database<Buffer, string | number>,
    key: string | number,
    where: string,
  ): T | undefined {
    const value = database.getBinary(key);
    return value === undefined ? undefined : decodeRecord<T>(value, this.filePath, where);
  }

  readFormat(): { magic: string; version: number } | undefined {
    return this.read(this.meta, 'format', 'meta/format');
  }

  readState(): StateRecord | undefined {
    return this.read(this.meta, 'state', 'meta/state');
  }

  getObject(key: string): StoredObject | undefined {
    return this.read(this.objects, key, `objects/${key}`);
  }

  *objectsInRange(range: { start: string; end: string }): Generator<StoredObject> {
    for (const { key, value } of this.objects.getRange(range)) {
      yield decodeRecord<StoredObject>(value, this.filePath, `objects/${key}`);
    }
  }

  *allObjects(): Generator<[string, StoredObject]> {
    for (const { key, value } of this.objects.getRange({})) {
      yield [key, decodeRecord<StoredObject>(value, this.filePath, `objects/${key}`)];
    }
  }

  objectKeyOfUid(uid: string): string | undefined {
    return this.read(this.uids, uid, `uids/${uid}`);
  }

  *allUids(): Generator<[string, string]> {
    for (const { key, value } of this.uids.getRange({})) {
      yield [key, decodeRecord<string>(value, this.filePath, `uids/${key}`)];
    }
  }

  dependentKeys(ownerUid: string): string[] {
    const prefixLength = ownerUid.length + 1;
    return [...this.dependents.getKeys(dependentRange(ownerUid))].map((key) => key.slice(prefixLength));
  }

  *allDependentEntries(): Generator<string> {
    yield* this.dependents.getKeys({});
  }

  /** Change-log entries with resourceVersion in (after, upTo], at most `limit`. */
  changesAfter(after: number, upTo: number, limit: number): (ChangeRecord & { revision: number })[] {
    const entries: (ChangeRecord & { revision: number })[] = [];
    if (upTo <= after) return entries;
    for (const { key, value } of this.changes.getRange({ start: after + 1, end: upTo + 1, limit })) {
      entries.push({ ...decodeRecord<ChangeRecord>(value, this.filePath, `changes/${key}`), revision: key });
    }
    return entries;
  }

  *allChanges(): Generator<[number, ChangeRecord]> {
    for (const { key, value } of this.changes.getRange({})) {
      yield [key, decodeRecord<ChangeRecord>(value, this.filePath, `changes/${key}`)];
    }
  }

  getChange(revision: number): ChangeRecord | undefined {
    return this.read(this.changes, revision, `changes/${revision}`);
  }

  oldestEventSequence(): number | undefined {
    for (const key of this.events.getKeys({ limit: 1 })) return key;
    return undefined;
  }

  *allEvents(): Generator<[number, ResourceEvent]> {
    for (const { key, value } of this.events.getRange({})) {
      yield [key, decodeRecord<ResourceEvent>(value, this.filePath, `events/${key}`)];
    }
  }

  getEvent(sequence: number): ResourceEvent | undefined {
    return this.read(this.events, sequence, `events/${sequence}`);
  }

  eventSequenceOf(correlationKey: string): number | undefined {
    return this.read(this.eventKeys, correlationKey, `eventKeys/${correlationKey}`);
  }

  *allEventKeys(): Generator<[string, number]> {
    for (const { key, value } of this.eventKeys.getRange({})) {
      yield [key, decodeRecord<number>(value, this.filePath, `eventKeys/${key}`)];
    }
  }

  /** Runs `body` in one LMDB write transaction: all of it commits, or none (a throw aborts). */
  transaction<T>(body: () => T): T {
    return this.root.transactionSync(body);
  }

  /**
   * Resolves once every commit so far is on disk. lmdb-js folds `transactionSync` commits
   * into its writer thread's batch, which reaches the file (and fsync, with
   * overlappingSync off) only after the event turn; `flushed` is lmdb-js's documented
   * promise for "committed and synced to storage".
   */
  async flushed(): Promise<void> {
    await this.root.flushed;
  }

  putFormat(): void {
    this.meta.put('format', encodeRecord({ magic: FORMAT_MAGIC, version: FORMAT_VERSION }));
  }

  putState(state: StateRecord): void {
    this.meta.put('state', encodeRecord(state));
  }

  putObject(key: string, object: StoredObject): void {
    this.objects.put(key, encodeRecord(object));
  }

  removeObject(key: string): void {
    this.objects.remove(key);
  }

  putUid(uid: string, key: string): void {
    this.uids.put(uid, encodeRecord(key));
  }

  removeUid(uid: string): void {
    this.uids.remove(uid);
  }

  putDependent(ownerUid: string, dependentKey: string): void {
    this.dependents.put(`${ownerUid}|${dependentKey}`, EMPTY);
  }

  removeDependent(ownerUid: string, dependentKey: string): void {
    this.dependents.remove(`${ownerUid}|${dependentKey}`);
  }

  putChange(revision: number, change: ChangeRecord): void {
    this.changes.put(revision, encodeRecord(change));
  }

  removeChange(revision: number): void {
    this.changes.remove(revision);
  }

  putEvent(sequence: number, event: ResourceEvent): void {
    this.events.put(sequence, encodeRecord(event));
  }

  removeEvent(sequence: number): void {
    this.events.remove(sequence);
  }

  putEventKey(correlationKey: string, sequence: number): void {
    this.eventKeys.put(correlationKey, encodeRecord(sequence));
  }

  removeEventKey(correlationKey: string): void {
    this.eventKeys.remove(correlationKey);
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
