/**
 * The nfs-ganesha configuration of one share manager: one EXPORT of one volume over NFSv4
 * (TCP only, minor versions 1 and 2 unless asked otherwise), bound to one address and port,
 * with every file ganesha writes (recovery records, credential cache) under the share
 * manager's state folder.
 *
 * Every value that reaches the configuration text is validated against a whitelist first
 * (`checkGaneshaSettings`): a volume name is a DNS-1123 label, paths are absolute, normalized
 * and made of `A-Z a-z 0-9 . _ - + @ /` only, numbers are integers in range. Nothing a caller
 * passes can add a block, a key, a comment or an `%include` to the configuration — hostile
 * values are refused with SHARE_MANAGER_CONFIG_INVALID naming the field.
 *
 * ```ts
 * const text = renderGaneshaConfig(checkGaneshaSettings({
 *   volume: 'pvc-1', address: '127.0.0.21', port: 2049, exportPath: '/mnt/pvc-1',
 *   stateDirectory: '/var/lib/hornbill/share-manager/pvc-1', nfs: DEFAULT_NFS_OPTIONS,
 * }));
 * ```
 */
import path from 'node:path';
import { HornbillError } from '../errors.ts';

/** NFS tunables a caller may set (`--nfs-options min-version=4.0,lease-lifetime=30`). */
export interface NfsOptions {
  /** Lowest NFSv4 minor version served: 0, 1 or 2 (default 1, so NFSv4.1 and 4.2). */
  minimumMinorVersion: 0 | 1 | 2;
  /** NFSv4 lease of the clients' state, seconds (ganesha's Lease_Lifetime; default 60). */
  leaseLifetimeSeconds: number;
  /**
   * Grace period after a start, seconds, for clients to reclaim their state; undefined is
   * graceless (the default): a share manager that moved to a new node starts serving at once.
   */
  gracePeriodSeconds: number | undefined;
}

export const DEFAULT_NFS_OPTIONS: NfsOptions = {
  minimumMinorVersion: 1,
  leaseLifetimeSeconds: 60,
  gracePeriodSeconds: undefined,
};

export interface GaneshaSettings {
  /** The volume's name: the pseudo path is `/<volume>`. */
  volume: string;
  /** IPv4 address ganesha binds to. */
  address: string;
  port: number;
  /** The folder exported (the mounted volume, or a plain directory). */
  exportPath: string;
  /** The share manager's state folder: config, log, pid, recovery records, credential cache. */
  stateDirectory: string;
  nfs: NfsOptions;
}

/** Where ganesha's files live inside the state folder. */
export interface GaneshaPaths {
  config: string;
  log: string;
  previousLog: string;
  pid: string;
  recoveryRoot: string;
  credentialCache: string;
}

export function ganeshaPaths(stateDirectory: string): GaneshaPaths {
  return {
    config: path.join(stateDirectory, 'ganesha.conf'),
    log: path.join(stateDirectory, 'ganesha.log'),
    previousLog: path.join(stateDirectory, 'ganesha.log.previous'),
    pid: path.join(stateDirectory, 'ganesha.pid'),
    recoveryRoot: path.join(stateDirectory, 'recovery'),
    credentialCache: path.join(stateDirectory, 'credential-cache'),
  };
}

const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const VOLUME_NAME_LENGTH_MAX = 63;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Characters a path may hold in the configuration; no quote, brace, semicolon, comment or space. */
const SAFE_PATH = /^\/[A-Za-z0-9._+@/-]*$/;
/** Ganesha keeps paths in fixed buffers (MAXPATHLEN); stay well below. */
const PATH_LENGTH_MAX = 1024;
const LEASE_LIFETIME_SECONDS_MAX = 180;
const GRACE_PERIOD_SECONDS_MAX = 180;

function refuse(field: string, message: string, value: unknown): HornbillError {
  return new HornbillError(
    'SHARE_MANAGER_CONFIG_INVALID',
    `${field} ${message}, not ${JSON.stringify(value)}`,
    {
      field,
    },
  );
}

export function checkVolumeName(value: unknown, field = 'volume'): string {
  if (typeof value !== 'string' || value.length > VOLUME_NAME_LENGTH_MAX || !VOLUME_NAME.test(value))
    throw refuse(field, 'must be a DNS-1123 label (a-z, 0-9, -; at most 63 characters)', value);
  return value;
}

export function checkAddress(value: unknown, field = 'address'): string {
  if (typeof value !== 'string' || !IPV4.test(value)) throw refuse(field, 'must be an IPv4 address', value);
  return value;
}

export function checkPort(value: unknown, field = 'port', minimum = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > 65535)
    throw refuse(field, `must be a port ${minimum}-65535`, value);
  return value;
}

/** An absolute, normalized path of safe characters (see SAFE_PATH). */
export function checkSafePath(value: unknown, field: string): string {
  if (
    typeof value !== 'string' ||
    value.length > PATH_LENGTH_MAX ||
    !SAFE_PATH.test(value) ||
    path.posix.normalize(value) !== value ||
    (value.length > 1 && value.endsWith('/'))
  ) {
    throw refuse(
      field,
      'must be an absolute, normalized path of A-Z a-z 0-9 . _ - + @ / (at most 1024 characters)',
      value,
    );
  }
  return value;
}

function checkWholeNumber(value: unknown, field: string, minimum: number, maximum: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum)
    throw refuse(field, `must be a whole number ${minimum}-${maximum}`, value);
  return value;
}

export function checkNfsOptions(options: NfsOptions): NfsOptions {
  const minimum = options.minimumMinorVersion;
  if (minimum !== 0 && minimum !== 1 && minimum !== 2)
    throw refuse('nfs.minimumMinorVersion', 'must be 0, 1 or 2', minimum);
  return {
    minimumMinorVersion: minimum,
    leaseLifetimeSeconds: checkWholeNumber(
      options.leaseLifetimeSeconds,
      'nfs.leaseLifetimeSeconds',
      1,
      LEASE_LIFETIME_SECONDS_MAX,
    ),
    gracePeriodSeconds:
      options.gracePeriodSeconds === undefined
        ? undefined
        : checkWholeNumber(options.gracePeriodSeconds, 'nfs.gracePeriodSeconds', 0, GRACE_PERIOD_SECONDS_MAX),
  };
}

/** Every field checked; SHARE_MANAGER_CONFIG_INVALID names the first bad one. */
export function checkGaneshaSettings(settings: GaneshaSettings): GaneshaSettings {
  return {
    volume: checkVolumeName(settings.volume),
    address: checkAddress(settings.address),
    port: checkPort(settings.port),
    exportPath: checkSafePath(settings.exportPath, 'exportPath'),
    stateDirectory: checkSafePath(settings.stateDirectory, 'stateDirectory'),
    nfs: checkNfsOptions(settings.nfs),
  };
}

/**
 * `min-version=4.1,lease-lifetime=60,grace-period=90` → options (unknown keys and bad values
 * are SHARE_MANAGER_CONFIG_INVALID). An empty text gives the defaults.
 */
export function parseNfsOptions(text: string): NfsOptions {
  const options: NfsOptions = { ...DEFAULT_NFS_OPTIONS };
  if (text.trim() === '') return options;
  for (const item of text.split(',')) {
    const match = /^([a-z-]+)=([0-9.]+)$/.exec(item.trim());
    if (match === null) throw refuse('nfs-options', 'must be KEY=NUMBER items separated by commas', item);
    const [, key, value] = match;
    if (key === 'min-version') {
      const minor = { '4.0': 0, '4.1': 1, '4.2': 2 }[value];
      if (minor === undefined) throw refuse('nfs-options min-version', 'must be 4.0, 4.1 or 4.2', value);
      options.minimumMinorVersion = minor as 0 | 1 | 2;
    } else if (key === 'lease-lifetime') {
      options.leaseLifetimeSeconds = Number(value);
    } else if (key === 'grace-period') {
      options.gracePeriodSeconds = Number(value);
    } else {
      throw refuse('nfs-options', 'knows min-version, lease-lifetime and grace-period only', key);
    }
  }
  return checkNfsOptions(options);
}

/** Quoted configuration string; the value was checked to hold no quote or backslash. */
function quoted(value: string): string {
  if (/["\\\n\r]/.test(value))
    throw new HornbillError('INTERNAL', 'unchecked value reached the ganesha config');
  return `"${value}"`;
}

/** The configuration text; `settings` must come from checkGaneshaSettings. */
export function renderGaneshaConfig(settings: GaneshaSettings): string {
  const checked = checkGaneshaSettings(settings);
  const paths = ganeshaPaths(checked.stateDirectory);
  const minorVersions = [0, 1, 2].filter((minor) => minor >= checked.nfs.minimumMinorVersion);
  const grace =
    checked.nfs.gracePeriodSeconds === undefined
      ? ['Graceless = true;']
      : ['Graceless = false;', `Grace_Period = ${checked.nfs.gracePeriodSeconds};`];
  return [
    `# Generated by hornbill share-manager for volume ${checked.volume}; do not edit.`,
    'NFS_CORE_PARAM {',
    '  Protocols = 4;',
    `  NFS_Port = ${checked.port};`,
    `  Bind_Addr = ${checked.address};`,
    '  Enable_NLM = false;',
    '  Enable_RQUOTA = false;',
    '  Enable_UDP = false;',
    '}',
    'NFSV4 {',
    `  Minor_Versions = ${minorVersions.join(', ')};`,
    `  Lease_Lifetime = ${checked.nfs.leaseLifetimeSeconds};`,
    ...grace.map((line) => `  ${line}`),
    '  RecoveryBackend = fs;',
    `  RecoveryRoot = ${quoted(paths.recoveryRoot)};`,
    '}',
    'NFS_KRB5 {',
    '  Active_krb5 = false;',
    `  CCacheDir = ${quoted(paths.credentialCache)};`,
    '}',
    'EXPORT {',
    '  Export_Id = 1;',
    `  Path = ${quoted(checked.exportPath)};`,
    `  Pseudo = ${quoted(`/${checked.volume}`)};`,
    '  Access_Type = RW;',
    '  Squash = No_Root_Squash;',
    '  SecType = sys;',
    '  Protocols = 4;',
    '  Transports = TCP;',
    '  FSAL { Name = VFS; }',
    '}',
    'LOG {',
    '  Default_Log_Level = EVENT;',
    '}',
    '',
  ].join('\n');
}

/** What clients mount: `nfs://<address>:<port>/<volume>`. */
export function shareEndpoint(address: string, port: number, volume: string): string {
  return `nfs://${address}:${port}/${volume}`;
}
