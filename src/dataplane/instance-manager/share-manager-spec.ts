/**
 * What a CreateShareManager request asks for, validated (DESIGN.md §8), and the paths a share
 * manager of this node uses:
 *
 * - state (ganesha's config, log, recovery records): `<disk>/share-managers/<volume>/`
 * - export, when the source is a directory: `<disk>/share-exports/<volume>/`
 * - mount point, when the source is the volume's block device: `<state>/mount`
 *
 * Every path is built here from a disk of this instance manager and a checked volume name;
 * only the lease file comes from the request (lease backend `file`: it must be where the
 * controller reads it, in a folder every node shares in embedded mode), and it is checked to
 * be an absolute, normalized `.json` path of plain characters. With lease backend
 * `kubernetes` the share manager campaigns for the Lease `share-manager-<volume>` in
 * `leaseNamespace` (a DNS-1123 label) through this pod's service account.
 */
import path from 'node:path';
import { parseIscsiEndpoint } from '../../csi/host/types.ts';
import type { HornbillError as HornbillErrorType } from '../../errors.ts';
import { HornbillError, isHornbillError } from '../../errors.ts';
import {
  checkAddress,
  checkVolumeName,
  type LeaseBackend,
  parseNfsOptions,
} from '../../share-manager/index.ts';
import { diskPath, instanceName, volumeName } from './validation.ts';

export type ShareSourceKind = 'directory' | 'device';
export const SHARE_FILESYSTEMS = ['ext4', 'xfs'] as const;
export type ShareFilesystem = (typeof SHARE_FILESYSTEMS)[number];

export const LEASE_DURATION_SECONDS_DEFAULT = 15;
export const LEASE_DURATION_SECONDS_MIN = 3;
export const LEASE_DURATION_SECONDS_MAX = 300;
const SAFE_PATH = /^[A-Za-z0-9._\-+@/]+$/;
const PATH_CHARS_MAX = 1024;

export interface ShareManagerSpec {
  name: string;
  volumeName: string;
  /**
   * The address ganesha binds: embedded mode, the volume's stable loopback service address;
   * Kubernetes mode, this node's address (the pod IP: host network) with a port distinct per
   * volume, behind the Service share-manager-<volume> (src/controllers/share-manager/services.ts).
   */
  address: string;
  port: number;
  source: ShareSourceKind;
  /** The volume's engine target (`iscsi://host:port/iqn/lun`), for source `device`. */
  deviceEndpoint: string;
  fsType: ShareFilesystem;
  /** `--nfs-options` as given (validated by the share manager's own parser). */
  nfsOptions: string;
  leaseBackend: LeaseBackend;
  /** '' for lease backend `kubernetes`. */
  leaseFile: string;
  /** The Lease's namespace for lease backend `kubernetes`; '' for `file`. */
  leaseNamespace: string;
  leaseDurationSeconds: number;
  /** The disk holding the state folder (and the export folder). */
  diskPath: string;
}

export interface ShareManagerSpecInput {
  name?: unknown;
  volumeName?: unknown;
  address?: unknown;
  port?: unknown;
  source?: unknown;
  deviceEndpoint?: unknown;
  fsType?: unknown;
  nfsOptions?: unknown;
  leaseBackend?: unknown;
  leaseFile?: unknown;
  leaseNamespace?: unknown;
  leaseDurationSeconds?: unknown;
  diskPath?: unknown;
}

function invalid(field: string, reason: string, value?: unknown): HornbillErrorType {
  return new HornbillError('INVALID_ARGUMENT', `${field} ${reason}`, {
    field,
    ...(value === undefined ? {} : { value: typeof value === 'string' ? value.slice(0, 120) : value }),
  });
}

function optionalText(value: unknown, field: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  return value;
}

/** Turns the share manager's own SHARE_MANAGER_CONFIG_INVALID into INVALID_ARGUMENT naming the proto field. */
function asArgument<T>(field: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (isHornbillError(error, 'SHARE_MANAGER_CONFIG_INVALID')) throw invalid(field, error.message);
    throw error;
  }
}

/** The lease backend and where its lease is: a file, or a namespace (the Lease's name follows the volume). */
function leaseFields(
  input: ShareManagerSpecInput,
): Pick<ShareManagerSpec, 'leaseBackend' | 'leaseFile' | 'leaseNamespace'> {
  const leaseBackend = optionalText(input.leaseBackend, 'lease_backend') || 'file';
  const leaseFile = optionalText(input.leaseFile, 'lease_file');
  const leaseNamespace = optionalText(input.leaseNamespace, 'lease_namespace');
  if (leaseBackend === 'kubernetes') {
    if (leaseFile !== '') throw invalid('lease_file', 'goes with lease_backend file only', leaseFile);
    asArgument('lease_namespace', () => checkVolumeName(leaseNamespace, 'lease_namespace'));
    return { leaseBackend, leaseFile, leaseNamespace };
  }
  if (leaseBackend !== 'file') throw invalid('lease_backend', 'must be file or kubernetes', leaseBackend);
  if (leaseNamespace !== '')
    throw invalid('lease_namespace', 'goes with lease_backend kubernetes only', leaseNamespace);
  if (
    leaseFile.length > PATH_CHARS_MAX ||
    !path.isAbsolute(leaseFile) ||
    path.normalize(leaseFile) !== leaseFile ||
    !SAFE_PATH.test(leaseFile) ||
    !leaseFile.endsWith('.json')
  )
    throw invalid(
      'lease_file',
      'must be an absolute, normalized path of A-Z a-z 0-9 . _ - + @ / ending in .json',
      leaseFile,
    );
  return { leaseBackend, leaseFile, leaseNamespace };
}

/** `hornbill share-manager` lease flags for a spec. */
export function shareManagerLeaseArguments(spec: ShareManagerSpec): string[] {
  return spec.leaseBackend === 'kubernetes'
    ? ['--lease', 'kubernetes', '--lease-namespace', spec.leaseNamespace]
    : ['--lease', 'file', '--lease-file', spec.leaseFile];
}

export function shareManagerSpec(input: ShareManagerSpecInput, disks: readonly string[]): ShareManagerSpec {
  const name = instanceName(input.name);
  const volume = volumeName(input.volumeName);
  const address = asArgument('address', () =>
    checkAddress(optionalText(input.address, 'address'), 'address'),
  );
  const port = input.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw invalid('port', 'must be a port 1-65535', port);
  const source = optionalText(input.source, 'source') || 'directory';
  if (source !== 'directory' && source !== 'device')
    throw invalid('source', 'must be directory or device', source);
  const deviceEndpoint = optionalText(input.deviceEndpoint, 'device_endpoint');
  if (source === 'device' && parseIscsiEndpoint(deviceEndpoint) === undefined)
    throw invalid('device_endpoint', 'must be iscsi://HOST:PORT/IQN/LUN for source device', deviceEndpoint);
  if (source === 'directory' && deviceEndpoint !== '')
    throw invalid('device_endpoint', 'goes with source device only', deviceEndpoint);
  const fsType = optionalText(input.fsType, 'fs_type') || 'ext4';
  if (!(SHARE_FILESYSTEMS as readonly string[]).includes(fsType))
    throw invalid('fs_type', 'must be ext4 or xfs', fsType);
  const nfsOptions = optionalText(input.nfsOptions, 'nfs_options');
  asArgument('nfs_options', () => parseNfsOptions(nfsOptions));
  const { leaseBackend, leaseFile, leaseNamespace } = leaseFields(input);
  const duration =
    input.leaseDurationSeconds === undefined || input.leaseDurationSeconds === 0
      ? LEASE_DURATION_SECONDS_DEFAULT
      : input.leaseDurationSeconds;
  if (
    typeof duration !== 'number' ||
    !Number.isInteger(duration) ||
    duration < LEASE_DURATION_SECONDS_MIN ||
    duration > LEASE_DURATION_SECONDS_MAX
  )
    throw invalid(
      'lease_duration_seconds',
      `must be ${LEASE_DURATION_SECONDS_MIN}-${LEASE_DURATION_SECONDS_MAX} (0: ${LEASE_DURATION_SECONDS_DEFAULT})`,
      duration,
    );
  const disk = optionalText(input.diskPath, 'disk_path') === '' ? disks[0] : diskPath(input.diskPath, disks);
  return {
    name,
    volumeName: volume,
    address,
    port,
    source,
    deviceEndpoint,
    fsType: fsType as ShareFilesystem,
    nfsOptions,
    leaseBackend,
    leaseFile,
    leaseNamespace,
    leaseDurationSeconds: duration,
    diskPath: disk,
  };
}

export function sameShareManagerSpec(a: ShareManagerSpec, b: ShareManagerSpec): boolean {
  return (Object.keys(a) as (keyof ShareManagerSpec)[]).every((key) => a[key] === b[key]);
}

/** Where a share manager of `volume` keeps its state on `disk`. */
export function shareStateDirectory(disk: string, volume: string): string {
  return path.join(disk, 'share-managers', volume);
}

/** The folder a directory-source share manager exports: a plain folder, not the volume. */
export function shareExportDirectory(disk: string, volume: string): string {
  return path.join(disk, 'share-exports', volume);
}

/**
 * `hornbill share-manager` arguments for a spec (after the command itself). Source `device`:
 * `--device` the device the instance manager logged in to; or, with `iscsiLogin` (a Pod of
 * its own, src/controllers/share-manager/kubernetes-pods.ts), `--iscsi-target` so that the
 * share manager logs in to the engine's target itself, in the host's namespaces.
 */
export function shareManagerArguments(
  spec: ShareManagerSpec,
  options: { nodeName: string; device?: string; iscsiLogin?: boolean; startTimeoutSeconds?: number },
): string[] {
  const stateDirectory = shareStateDirectory(spec.diskPath, spec.volumeName);
  const device = options.iscsiLogin
    ? ['--iscsi-target', spec.deviceEndpoint, '--host-namespaces']
    : ['--device', options.device ?? ''];
  const source =
    spec.source === 'directory'
      ? ['--export-dir', shareExportDirectory(spec.diskPath, spec.volumeName)]
      : [...device, '--fs-type', spec.fsType];
  return [
    ...['--volume', spec.volumeName, '--address', spec.address, '--port', String(spec.port)],
    ...['--state-dir', stateDirectory, ...source],
    ...(spec.nfsOptions === '' ? [] : ['--nfs-options', spec.nfsOptions]),
    ...shareManagerLeaseArguments(spec),
    ...['--lease-duration', `${spec.leaseDurationSeconds}s`],
    ...['--lease-identity', `${options.nodeName}/${spec.name}`],
    ...['--lease-wait', `${spec.leaseDurationSeconds * 2}s`],
    ...['--start-timeout', `${options.startTimeoutSeconds ?? 30}s`],
  ];
}

/** A CreateShareManager request (snake_case, as the gRPC service receives it) as a spec input. */
// biome-ignore lint/suspicious/noExplicitAny: a CreateShareManagerRequest message
export function shareManagerSpecInput(request: Record<string, any>): ShareManagerSpecInput {
  return {
    name: request.name,
    volumeName: request.volume_name,
    address: request.address,
    port: request.port,
    source: request.source,
    deviceEndpoint: request.device_endpoint,
    fsType: request.fs_type,
    nfsOptions: request.nfs_options,
    leaseBackend: request.lease_backend,
    leaseFile: request.lease_file,
    leaseNamespace: request.lease_namespace,
    leaseDurationSeconds: request.lease_duration_seconds,
    diskPath: request.disk_path,
  };
}
