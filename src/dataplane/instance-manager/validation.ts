import path from 'node:path';
import { HornbillError } from '../../errors.ts';
import { MAX_VOLUME_BYTES, SNAPSHOT_NAME_PATTERN } from '../../storage/constants.ts';
import type { EngineSpec, Frontend, InstanceKind, ReplicaSpec } from './types.ts';

/**
 * Validation of everything a caller of the instance manager sends (DESIGN.md §8: hostile
 * until validated). Each failure is INVALID_ARGUMENT (or INSTANCE_DISK_UNKNOWN) with
 * `details.field` naming the field as the proto spells it; nothing has changed when one is
 * thrown.
 */

/** Kubernetes object names (DNS-1123 subdomain): instance names. */
const INSTANCE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const INSTANCE_NAME_CHARS_MAX = 253;
/** DNS-1123 label: volume names (they become iSCSI target names and NBD export names). */
const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const VOLUME_NAME_CHARS_MAX = 63;
/** One path component that cannot climb: no '/', no leading '.', so never '.' or '..'. */
const DATA_DIRECTORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const DATA_DIRECTORY_CHARS_MAX = 253;
const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const HOST_CHARS_MAX = 253;
/** Replicas of one engine at most (Longhorn volumes have up to 20). */
export const ENGINE_REPLICAS_MAX = 32;
export const REPLICA_TIMEOUT_MS_DEFAULT = 8000;
export const REPLICA_TIMEOUT_MS_MIN = 1000;
export const REPLICA_TIMEOUT_MS_MAX = 600_000;
const FRONTENDS: readonly Frontend[] = ['iscsi', 'nbd', 'none'];

function invalid(field: string, reason: string, value?: unknown): HornbillError {
  const shown =
    typeof value === 'string' && value.length > 80
      ? `${value.slice(0, 80)}… (${value.length} characters)`
      : value;
  return new HornbillError('INVALID_ARGUMENT', `${field} ${reason}`, {
    field,
    ...(value === undefined ? {} : { value: shown }),
  });
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  if (value === '') throw invalid(field, 'is required');
  return value;
}

function matching(value: unknown, field: string, pattern: RegExp, maxChars: number, rule: string): string {
  const checked = text(value, field);
  if (checked.length > maxChars) throw invalid(field, `must be at most ${maxChars} characters`, checked);
  if (!pattern.test(checked)) throw invalid(field, `must be ${rule}`, checked);
  return checked;
}

export function instanceName(value: unknown, field = 'name'): string {
  return matching(
    value,
    field,
    INSTANCE_NAME,
    INSTANCE_NAME_CHARS_MAX,
    "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
  );
}

export function volumeName(value: unknown, field = 'volume_name'): string {
  return matching(
    value,
    field,
    VOLUME_NAME,
    VOLUME_NAME_CHARS_MAX,
    "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
  );
}

export function dataDirectoryName(value: unknown, field = 'data_directory_name'): string {
  return matching(
    value,
    field,
    DATA_DIRECTORY_NAME,
    DATA_DIRECTORY_CHARS_MAX,
    'one folder name of A-Z a-z 0-9 . _ - starting with a letter or digit',
  );
}

export function snapshotName(value: unknown, field = 'snapshot_name'): string {
  return matching(value, field, SNAPSHOT_NAME_PATTERN, 128, '1-128 characters of A-Z a-z 0-9 . _ -');
}

/** Snapshot labels: at most 64, keys 1-253 characters, values up to 1024 (the store's limits). */
export function snapshotLabels(value: unknown, field = 'labels'): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(field, 'must be a map of strings');
  const entries = Object.entries(value);
  if (entries.length > 64) throw invalid(field, 'may hold at most 64 labels', entries.length);
  for (const [key, label] of entries) {
    if (key.length === 0 || key.length > 253)
      throw invalid(`${field}.${key}`, 'key must be 1-253 characters');
    if (typeof label !== 'string' || label.length > 1024)
      throw invalid(`${field}.${key}`, 'must be a string of at most 1024 characters');
  }
  return { ...(value as Record<string, string>) };
}

export function sizeBytes(value: unknown, field = 'size_bytes'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0)
    throw invalid(field, 'must be a positive whole number of bytes', value);
  if (value % 4096 !== 0) throw invalid(field, 'must be a multiple of 4096', value);
  if (value > MAX_VOLUME_BYTES) throw invalid(field, `must be at most ${MAX_VOLUME_BYTES}`, value);
  return value;
}

/** "host:port" with an IPv4 address or a DNS name, port 1-65535. */
export function parseReplicaAddress(value: unknown, field: string): { host: string; port: number } {
  const checked = text(value, field);
  const colon = checked.lastIndexOf(':');
  const host = checked.slice(0, colon);
  const portText = checked.slice(colon + 1);
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (colon <= 0 || host.length > HOST_CHARS_MAX || !HOST.test(host) || !(port >= 1 && port <= 65535))
    throw invalid(field, 'must be HOST:PORT with a port of 1-65535', checked);
  return { host, port };
}

export function replicaAddress(value: unknown, field = 'address'): string {
  const { host, port } = parseReplicaAddress(value, field);
  return `${host}:${port}`;
}

export function frontend(value: unknown, field = 'frontend'): Frontend {
  if (typeof value !== 'string' || !FRONTENDS.includes(value as Frontend))
    throw invalid(field, `must be one of ${FRONTENDS.join(', ')}`, value);
  return value as Frontend;
}

export function kindFilter(value: unknown, field = 'kind'): InstanceKind | undefined {
  if (value === undefined || value === '') return undefined;
  if (value !== 'engine' && value !== 'replica')
    throw invalid(field, 'must be engine, replica or empty', value);
  return value;
}

export function workers(value: unknown, fallback: 0 | 1, field = 'workers'): 0 | 1 {
  if (value === undefined || value === null) return fallback;
  if (value !== 0 && value !== 1) throw invalid(field, 'must be 0 or 1', value);
  return value;
}

export function replicaTimeoutMs(value: unknown, field = 'replica_timeout_ms'): number {
  if (value === undefined || value === 0) return REPLICA_TIMEOUT_MS_DEFAULT;
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < REPLICA_TIMEOUT_MS_MIN ||
    value > REPLICA_TIMEOUT_MS_MAX
  )
    throw invalid(
      field,
      `must be ${REPLICA_TIMEOUT_MS_MIN}-${REPLICA_TIMEOUT_MS_MAX} (0: ${REPLICA_TIMEOUT_MS_DEFAULT})`,
      value,
    );
  return value;
}

export function bandwidth(value: unknown, field = 'bandwidth_bytes_per_second'): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalid(field, 'must be a whole number of bytes per second (0: no limit)', value);
  return value;
}

/** The disk path, resolved, if it is one of `disks`; INSTANCE_DISK_UNKNOWN otherwise. */
export function diskPath(value: unknown, disks: readonly string[], field = 'disk_path'): string {
  const checked = text(value, field);
  if (checked.length > 4096 || !path.isAbsolute(checked))
    throw invalid(field, 'must be an absolute path', checked);
  const resolved = path.resolve(checked);
  if (!disks.includes(resolved)) {
    throw new HornbillError('INSTANCE_DISK_UNKNOWN', `${checked} is not a disk of this instance manager`, {
      field,
      diskPath: checked,
      disks,
    });
  }
  return resolved;
}

/** `<disk>/replicas/<data directory>`, checked to stay inside the disk's replicas folder. */
export function replicaDirectory(disk: string, dataDirectory: string): string {
  const parent = path.join(disk, 'replicas');
  const directory = path.join(parent, dataDirectory);
  if (path.dirname(directory) !== parent)
    throw invalid('data_directory_name', 'must name one folder', dataDirectory);
  return directory;
}

export interface ReplicaSpecInput {
  name?: unknown;
  volumeName?: unknown;
  sizeBytes?: unknown;
  diskPath?: unknown;
  dataDirectoryName?: unknown;
}

export function replicaSpec(input: ReplicaSpecInput, disks: readonly string[]): ReplicaSpec {
  return {
    name: instanceName(input.name),
    volumeName: volumeName(input.volumeName),
    sizeBytes: sizeBytes(input.sizeBytes),
    diskPath: diskPath(input.diskPath, disks),
    dataDirectoryName: dataDirectoryName(input.dataDirectoryName),
  };
}

export interface EngineSpecInput {
  name?: unknown;
  volumeName?: unknown;
  sizeBytes?: unknown;
  replicaAddresses?: unknown;
  frontend?: unknown;
  workers?: unknown;
  replicaTimeoutMs?: unknown;
  preferLocalReplica?: unknown;
  inLocalReplicaThread?: unknown;
}

export function engineSpec(input: EngineSpecInput, defaultWorkers: 0 | 1): EngineSpec {
  const name = instanceName(input.name);
  const volume = volumeName(input.volumeName);
  const size = sizeBytes(input.sizeBytes);
  if (!Array.isArray(input.replicaAddresses) || input.replicaAddresses.length === 0)
    throw invalid('replica_addresses', 'must list at least one replica');
  if (input.replicaAddresses.length > ENGINE_REPLICAS_MAX)
    throw invalid('replica_addresses', `must list at most ${ENGINE_REPLICAS_MAX} replicas`);
  const addresses = input.replicaAddresses.map((value, index) =>
    replicaAddress(value, `replica_addresses[${index}]`),
  );
  if (new Set(addresses).size !== addresses.length)
    throw invalid('replica_addresses', 'must not repeat an address');
  if (input.preferLocalReplica !== undefined && typeof input.preferLocalReplica !== 'boolean')
    throw invalid('prefer_local_replica', 'must be a boolean');
  if (input.inLocalReplicaThread !== undefined && typeof input.inLocalReplicaThread !== 'boolean')
    throw invalid('in_local_replica_thread', 'must be a boolean');
  return {
    name,
    volumeName: volume,
    sizeBytes: size,
    replicaAddresses: addresses,
    frontend: frontend(input.frontend),
    workers: workers(input.workers, defaultWorkers),
    replicaTimeoutMs: replicaTimeoutMs(input.replicaTimeoutMs),
    preferLocalReplica: input.preferLocalReplica === true,
    inLocalReplicaThread: input.inLocalReplicaThread === true,
  };
}
