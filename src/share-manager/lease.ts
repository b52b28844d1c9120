/**
 * The share manager's lease: who serves a volume's export, and until when.
 *
 * The lease is a `LeaseClient` (src/resources/leader-election.ts), the same narrow interface
 * the manager's leader election uses, so a Kubernetes Lease (`kubernetesLeaseClient`, one per
 * volume, named `share-manager-<volume>`) plugs in unchanged; embedded mode uses
 * `FileLeaseClient`, a JSON file whose writes are conditional on its resourceVersion (a lock
 * file, created exclusively, guards each read-compare-write; the record is replaced by
 * rename, so a reader never sees half of one). The share manager campaigns with a
 * `LeaderElector` of one identity per process; only the holder serves.
 *
 * The controller decides a move with `leaseExpiry`: a lease that names nobody, or that has
 * not changed for its whole duration *by the controller's own clock* (counted from when it
 * first saw that resourceVersion), has expired — the share manager is gone or unhealthy.
 *
 * ```ts
 * const lease = new FileLeaseClient('/var/lib/hornbill/share-managers/pvc-1/lease.json');
 * let seen: LeaseObservation | undefined;
 * // every few seconds, in the ShareManager controller:
 * const record = await lease.get();
 * if (record) {
 *   seen = observe(seen, record, Date.now());
 *   if (leaseExpiry(seen, Date.now()).expired && (await breakExpiredLease(lease, seen, Date.now()))) move();
 * }
 * ```
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HornbillError, isHornbillError } from '../errors.ts';
import {
  type DeletableLeaseClient,
  isLeaseExpired,
  type LeaseClient,
  type LeaseObservation,
  type LeaseRecord,
  type LeaseSpec,
} from '../resources/leader-election.ts';

export {
  type DeletableLeaseClient,
  type LeaseClient,
  type LeaseObservation,
  type LeaseRecord,
  observe,
} from '../resources/leader-election.ts';

/** The Kubernetes Lease name of a volume's share manager. */
export function shareManagerLeaseName(volume: string): string {
  return `share-manager-${volume}`;
}

export interface LeaseExpiry {
  expired: boolean;
  /** When it expires (or expired) by the observer's clock; 0 when nobody holds it. */
  expiresAtMs: number;
  /** Time left, 0 once expired. */
  remainingMs: number;
  holder: string;
}

/** Whether the observed lease has expired, and when it will. */
export function leaseExpiry(observation: LeaseObservation, nowMs: number): LeaseExpiry {
  const { record, observedAtMs } = observation;
  const expiresAtMs = record.holderIdentity === '' ? 0 : observedAtMs + record.leaseDurationSeconds * 1_000;
  return {
    expired: isLeaseExpired(observation, nowMs),
    expiresAtMs,
    remainingMs: Math.max(0, expiresAtMs - nowMs),
    holder: record.holderIdentity,
  };
}

/**
 * Expiry by the renewTime the holder wrote: for a controller that sees the lease for the
 * first time (after its own restart) and runs on the same clock as the holder (embedded mode).
 */
export function leaseExpiresAtByRenewTime(record: LeaseRecord): number {
  if (record.holderIdentity === '' || record.renewTimeMs === undefined) return 0;
  return record.renewTimeMs + record.leaseDurationSeconds * 1_000;
}

/**
 * The controller's side of a move: once it has seen the lease expire, it writes it free —
 * conditional on the version it observed, so a holder that renewed meanwhile wins and the
 * call returns false. The replacement share manager then takes the lease at once instead of
 * waiting out a whole lease duration again by its own clock.
 */
export async function breakExpiredLease(
  lease: LeaseClient,
  observation: LeaseObservation,
  nowMs: number,
): Promise<boolean> {
  if (!leaseExpiry(observation, nowMs).expired) return false;
  if (observation.record.holderIdentity === '') return true;
  try {
    await lease.update({ ...observation.record, holderIdentity: '', renewTimeMs: nowMs });
    return true;
  } catch (error) {
    if (isHornbillError(error, 'RESOURCE_CONFLICT')) return false;
    throw error;
  }
}

/** A lock older than this was left by a process that died inside the critical section. */
const STALE_LOCK_MS = 5_000;
const LOCK_ATTEMPTS_MAX = 100;
const LEASE_FILE_BYTES_MAX = 64 * 1024;

interface StoredLease extends LeaseSpec {
  resourceVersion: string;
}

function checkStoredLease(value: unknown, file: string): StoredLease {
  const record = value as Partial<StoredLease> | null;
  const optionalTime = (time: unknown) => time === undefined || Number.isFinite(time);
  if (
    typeof record !== 'object' ||
    record === null ||
    typeof record.holderIdentity !== 'string' ||
    !Number.isInteger(record.leaseDurationSeconds) ||
    !Number.isInteger(record.leaseTransitions) ||
    typeof record.resourceVersion !== 'string' ||
    !optionalTime(record.acquireTimeMs) ||
    !optionalTime(record.renewTimeMs)
  ) {
    throw new HornbillError('SHARE_MANAGER_LEASE_INVALID', `${file} does not hold a lease record`, { file });
  }
  return record as StoredLease;
}

/** A LeaseClient on a JSON file: get, create (fails if present), update (conditional), delete. */
export class FileLeaseClient implements DeletableLeaseClient {
  readonly file: string;
  private readonly lockFile: string;

  constructor(file: string) {
    this.file = file;
    this.lockFile = `${file}.lock`;
  }

  async get(): Promise<LeaseRecord | undefined> {
    let text: string;
    try {
      const handle = await fs.open(this.file, 'r');
      try {
        const { size } = await handle.stat();
        if (size > LEASE_FILE_BYTES_MAX)
          throw new HornbillError('SHARE_MANAGER_LEASE_INVALID', `${this.file} is too large for a lease`);
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      return checkStoredLease(JSON.parse(text), this.file);
    } catch (error) {
      if (error instanceof HornbillError) throw error;
      throw new HornbillError('SHARE_MANAGER_LEASE_INVALID', `${this.file} is not JSON`, { file: this.file });
    }
  }

  async create(spec: LeaseSpec): Promise<LeaseRecord> {
    return this.locked(async () => {
      if ((await this.get()) !== undefined)
        throw new HornbillError('RESOURCE_ALREADY_EXISTS', `lease ${this.file} exists`, { file: this.file });
      return this.write({ ...spec, resourceVersion: '1' });
    });
  }

  async update(record: LeaseRecord): Promise<LeaseRecord> {
    return this.locked(async () => {
      const current = await this.get();
      if (current === undefined)
        throw new HornbillError('RESOURCE_NOT_FOUND', `lease ${this.file} does not exist`, {
          file: this.file,
        });
      if (current.resourceVersion !== record.resourceVersion) {
        throw new HornbillError('RESOURCE_CONFLICT', `lease ${this.file} changed since it was read`, {
          file: this.file,
        });
      }
      return this.write({ ...record, resourceVersion: String(Number(current.resourceVersion) + 1) });
    });
  }

  /** Removes the file (under the lock, so no write is half done); a missing file is fine. */
  async delete(): Promise<void> {
    await this.locked(() => fs.rm(this.file, { force: true }));
  }

  private async write(record: StoredLease): Promise<LeaseRecord> {
    const temporary = `${this.file}.${randomUUID()}.tmp`;
    await fs.writeFile(temporary, `${JSON.stringify(record)}\n`, { mode: 0o644 });
    await fs.rename(temporary, this.file);
    return record;
  }

  private async locked<T>(work: () => Promise<T>): Promise<T> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await fs.open(this.lockFile, 'wx');
        await handle.close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const stat = await fs.stat(this.lockFile).catch(() => undefined);
        if (stat !== undefined && Date.now() - stat.mtimeMs > STALE_LOCK_MS) {
          await fs.rm(this.lockFile, { force: true });
        } else if (attempt >= LOCK_ATTEMPTS_MAX) {
          throw new HornbillError('RESOURCE_CONFLICT', `lease ${this.file} stays locked`, {
            file: this.file,
          });
        } else {
          await sleep(10 + Math.random() * 20);
        }
      }
    }
    try {
      return await work();
    } finally {
      await fs.rm(this.lockFile, { force: true });
    }
  }
}

/**
 * The lease as the share manager uses it: writes (acquire, renew) go through only while
 * `healthy()` says so, so that an NFS server that stays down lets the lease lapse and the
 * controller moves the share manager.
 */
export function healthGatedLease(lease: LeaseClient, healthy: () => boolean): LeaseClient {
  const refuse = () =>
    new HornbillError('SHARE_MANAGER_NFS_FAILED', 'the nfs server is not healthy; the lease is not renewed');
  return {
    get: () => lease.get(),
    async create(spec) {
      if (!healthy()) throw refuse();
      return lease.create(spec);
    },
    async update(record) {
      // A release (nobody holds it) always goes through.
      if (record.holderIdentity !== '' && !healthy()) throw refuse();
      return lease.update(record);
    },
  };
}
