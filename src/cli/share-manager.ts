/**
 * `hornbill share-manager`: exports one RWX volume over NFSv4 with nfs-ganesha
 * (src/share-manager/, docs/share-manager.md). Argument parsing and wiring only.
 */
import os from 'node:os';
import path from 'node:path';
import { LinuxHostOperations } from '../csi/host/linux.ts';
import { parseIscsiEndpoint } from '../csi/host/types.ts';
import { HornbillError, isHornbillError } from '../errors.ts';
import { stderrLogger } from '../logging.ts';
import type { LeaderElectionTiming } from '../resources/leader-election.ts';
import { attachIscsiDevice, detachIscsiDevice } from '../share-manager/device.ts';
import {
  checkAddress,
  checkGaneshaSettings,
  checkVolumeName,
  describeLeaseLocation,
  FileLeaseClient,
  kubernetesLeaseLocation,
  type LeaseBackend,
  type LeaseClient,
  type NfsOptions,
  parseNfsOptions,
  ShareManager,
  type ShareManagerLeaseLocation,
  type ShareSource,
} from '../share-manager/index.ts';
import { announce, parseDuration, parseFlags, requireFlag, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const SHARE_MANAGER_USAGE = `Usage:
  hornbill share-manager --volume NAME --address IP [--port 2049] --state-dir DIR
                         (--export-dir DIR | (--device PATH | --iscsi-target iscsi://HOST:PORT/IQN/LUN)
                          [--fs-type ext4|xfs] [--mount-dir DIR] [--host-namespaces])
                         [--nfs-options min-version=4.1,lease-lifetime=60,grace-period=N]
                         [--health-port 0] [--lease file] [--lease-file FILE]
                         [--lease kubernetes [--lease-namespace hornbill-system] [--kubeconfig FILE]]
                         [--lease-identity ID] [--lease-duration 15s] [--lease-wait 60s]
                         [--start-timeout 30s] [--stop-timeout 10s] [--liveness-interval 5s]
      Exports one volume over NFSv4 (TCP, minor versions 1 and 2 unless --nfs-options
      min-version=4.0) with nfs-ganesha at nfs://IP:PORT/NAME. --device mounts the volume's
      formatted block device on --mount-dir (default DIR/mount) and exports it; --export-dir
      exports an existing directory. --iscsi-target logs in to the engine's iSCSI target
      first, formats a new volume once (--fs-type), mounts and exports its device, and logs
      out on stop (a share-manager Pod of its own in Kubernetes); --host-namespaces runs
      iscsiadm, mkfs and mount in the host's mount and network namespaces (nsenter; the pod
      needs hostPID), as the CSI node plugin does. Ganesha's config, log, pid file and recovery records
      live in --state-dir. Holds the volume's lease while healthy: --lease file (default)
      keeps it in --lease-file (default DIR/lease.json); --lease kubernetes in the Lease
      share-manager-NAME of --lease-namespace (kubeconfig: --kubeconfig, KUBECONFIG, or the
      pod's service account). Waits up to --lease-wait for another holder's lease to expire.
      GET /healthz on IP:--health-port (0: any free port). Prints one JSON line on stdout
      when the export answers, logs JSON to stderr (ganesha's log included), restarts a
      ganesha that dies or fails 3 liveness probes in a row (one every --liveness-interval),
      stops it, unmounts and releases the lease on SIGTERM.`;

export interface ShareManagerFlags {
  volume: string;
  address: string;
  port: number;
  stateDirectory: string;
  source:
    | { kind: 'directory'; path: string }
    | { kind: 'device'; device: string; fsType: 'ext4' | 'xfs'; mountDirectory: string }
    | { kind: 'iscsi'; endpoint: string; fsType: 'ext4' | 'xfs'; mountDirectory: string };
  /** Host operations in the host's mount and network namespaces (nsenter; a Pod with hostPID). */
  hostNamespaces: boolean;
  nfs: NfsOptions;
  healthPort: number;
  leaseBackend: LeaseBackend;
  /** Lease backend `file`; '' for `kubernetes`. */
  leaseFile: string;
  /** Lease backend `kubernetes`: the Lease `share-manager-<volume>` lives here; '' for `file`. */
  leaseNamespace: string;
  /** Lease backend `kubernetes`: a kubeconfig file; undefined: KUBECONFIG, ~/.kube/config, in-cluster. */
  kubeconfig: string | undefined;
  leaseIdentity: string;
  leaseDurationMs: number;
  leaseWaitMs: number;
  startTimeoutMs: number;
  stopTimeoutMs: number;
  livenessIntervalMs: number;
}

function usage(message: string): HornbillError {
  return new HornbillError('CLI_USAGE', `${message}\n${SHARE_MANAGER_USAGE}`);
}

function portFlag(value: string | undefined, flag: string, fallback: number, minimum: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value) || Number(value) < minimum || Number(value) > 65535)
    throw usage(`${flag} must be a port ${minimum}-65535, not ${JSON.stringify(value)}`);
  return Number(value);
}

function durationFlag(
  value: string | undefined,
  flag: string,
  fallbackMs: number,
  minimumMs: number,
): number {
  const milliseconds = value === undefined ? fallbackMs : parseDuration(value, flag);
  if (!(milliseconds >= minimumMs)) throw usage(`${flag} must be at least ${minimumMs} ms`);
  return milliseconds;
}

/** Renew a third of the way in, give up two thirds in, retry every fifth (15 s → 5, 10, 2 s… as Kubernetes). */
export function leaseTimingFor(leaseDurationMs: number): LeaderElectionTiming {
  return {
    leaseDurationMs,
    renewPeriodMs: Math.floor(leaseDurationMs / 3),
    renewDeadlineMs: Math.floor((leaseDurationMs * 2) / 3),
    retryPeriodMs: Math.min(2_000, Math.floor(leaseDurationMs / 5)),
  };
}

const DEFAULT_LEASE_NAMESPACE = 'hornbill-system';

function leaseFlags(
  values: Record<string, string | boolean | undefined>,
  stateDirectory: string,
): Pick<ShareManagerFlags, 'leaseBackend' | 'leaseFile' | 'leaseNamespace' | 'kubeconfig'> {
  const text = (name: string) => values[name] as string | undefined;
  const backend = text('lease') ?? 'file';
  if (backend === 'file') {
    if (text('lease-namespace') !== undefined || text('kubeconfig') !== undefined)
      throw usage('--lease-namespace and --kubeconfig go with --lease kubernetes');
    const leaseFile = path.resolve(text('lease-file') ?? path.join(stateDirectory, 'lease.json'));
    return { leaseBackend: 'file', leaseFile, leaseNamespace: '', kubeconfig: undefined };
  }
  if (backend !== 'kubernetes')
    throw usage(`--lease must be file or kubernetes, not ${JSON.stringify(backend)}`);
  if (text('lease-file') !== undefined) throw usage('--lease-file goes with --lease file');
  const leaseNamespace = text('lease-namespace') ?? DEFAULT_LEASE_NAMESPACE;
  try {
    checkVolumeName(leaseNamespace, '--lease-namespace');
  } catch {
    throw usage(`--lease-namespace must be a namespace name, not ${JSON.stringify(leaseNamespace)}`);
  }
  const kubeconfig = text('kubeconfig');
  return {
    leaseBackend: 'kubernetes',
    leaseFile: '',
    leaseNamespace,
    kubeconfig: kubeconfig === undefined ? undefined : path.resolve(kubeconfig),
  };
}

/** Where the lease is, as the ready line and the logs say it. */
export function leaseLocationOf(flags: ShareManagerFlags): ShareManagerLeaseLocation {
  return flags.leaseBackend === 'file'
    ? { backend: 'file', file: flags.leaseFile }
    : kubernetesLeaseLocation(flags.leaseNamespace, flags.volume);
}

/**
 * The lease the share manager campaigns with. Kubernetes: the kubeconfig is loaded (and
 * @kubernetes/client-node imported) only then; KUBERNETES_CONFIG_INVALID when there is none.
 */
export async function shareManagerLeaseClient(flags: ShareManagerFlags): Promise<LeaseClient> {
  if (flags.leaseBackend === 'file') return new FileLeaseClient(flags.leaseFile);
  const { loadKubeConfig } = await import('../resources/store/kubernetes-config.ts');
  const { kubernetesShareManagerLeases } = await import('../share-manager/kubernetes-leases.ts');
  const kubeConfig = loadKubeConfig({ kubeconfig: flags.kubeconfig });
  return kubernetesShareManagerLeases(kubeConfig, { namespace: flags.leaseNamespace }).client(flags.volume);
}

/** The command line, checked: every problem is CLI_USAGE naming the flag. */
export function parseShareManagerFlags(argv: string[]): ShareManagerFlags {
  const { values } = parseFlags(
    argv,
    {
      volume: { type: 'string' },
      address: { type: 'string' },
      port: { type: 'string' },
      'state-dir': { type: 'string' },
      'export-dir': { type: 'string' },
      device: { type: 'string' },
      'iscsi-target': { type: 'string' },
      'host-namespaces': { type: 'boolean' },
      'fs-type': { type: 'string' },
      'mount-dir': { type: 'string' },
      'nfs-options': { type: 'string' },
      'health-port': { type: 'string' },
      lease: { type: 'string' },
      'lease-file': { type: 'string' },
      'lease-namespace': { type: 'string' },
      kubeconfig: { type: 'string' },
      'lease-identity': { type: 'string' },
      'lease-duration': { type: 'string' },
      'lease-wait': { type: 'string' },
      'start-timeout': { type: 'string' },
      'stop-timeout': { type: 'string' },
      'liveness-interval': { type: 'string' },
    },
    SHARE_MANAGER_USAGE,
  );
  try {
    const volume = checkVolumeName(requireFlag(values.volume, '--volume', SHARE_MANAGER_USAGE), '--volume');
    const address = checkAddress(requireFlag(values.address, '--address', SHARE_MANAGER_USAGE), '--address');
    const stateDirectory = path.resolve(requireFlag(values['state-dir'], '--state-dir', SHARE_MANAGER_USAGE));
    const exportDirectory = values['export-dir'];
    const device = values.device;
    const iscsiTarget = values['iscsi-target'];
    if ([exportDirectory, device, iscsiTarget].filter((value) => value !== undefined).length !== 1)
      throw usage('exactly one of --export-dir, --device and --iscsi-target is required');
    let source: ShareManagerFlags['source'];
    if (exportDirectory !== undefined) {
      if (values['fs-type'] !== undefined || values['mount-dir'] !== undefined)
        throw usage('--fs-type and --mount-dir go with --device or --iscsi-target, not --export-dir');
      if (values['host-namespaces'] === true)
        throw usage('--host-namespaces goes with --device or --iscsi-target, not --export-dir');
      source = { kind: 'directory', path: path.resolve(exportDirectory) };
    } else {
      const fsType = values['fs-type'] ?? 'ext4';
      if (fsType !== 'ext4' && fsType !== 'xfs')
        throw usage(`--fs-type must be ext4 or xfs, not ${JSON.stringify(fsType)}`);
      const mountDirectory = path.resolve(values['mount-dir'] ?? path.join(stateDirectory, 'mount'));
      if (iscsiTarget !== undefined) {
        if (parseIscsiEndpoint(iscsiTarget) === undefined)
          throw usage(`--iscsi-target must be iscsi://HOST:PORT/IQN/LUN, not ${JSON.stringify(iscsiTarget)}`);
        source = { kind: 'iscsi', endpoint: iscsiTarget, fsType, mountDirectory };
      } else source = { kind: 'device', device: path.resolve(device as string), fsType, mountDirectory };
    }
    const leaseDurationMs = durationFlag(values['lease-duration'], '--lease-duration', 15_000, 3_000);
    if (leaseDurationMs % 1_000 !== 0) throw usage('--lease-duration must be whole seconds');
    const flags: ShareManagerFlags = {
      volume,
      address,
      port: portFlag(values.port, '--port', 2049, 1),
      stateDirectory,
      source,
      hostNamespaces: values['host-namespaces'] === true,
      nfs: parseNfsOptions(values['nfs-options'] ?? ''),
      healthPort: portFlag(values['health-port'], '--health-port', 0, 0),
      ...leaseFlags(values, stateDirectory),
      leaseIdentity: values['lease-identity'] ?? `${os.hostname()}:${process.pid}`,
      leaseDurationMs,
      leaseWaitMs: durationFlag(values['lease-wait'], '--lease-wait', 60_000, 0),
      startTimeoutMs: durationFlag(values['start-timeout'], '--start-timeout', 30_000, 100),
      stopTimeoutMs: durationFlag(values['stop-timeout'], '--stop-timeout', 10_000, 100),
      livenessIntervalMs: durationFlag(values['liveness-interval'], '--liveness-interval', 5_000, 100),
    };
    if (flags.leaseIdentity.length === 0 || flags.leaseIdentity.length > 253)
      throw usage('--lease-identity must be 1-253 characters');
    checkGaneshaSettings({
      volume,
      address,
      port: flags.port,
      stateDirectory,
      exportPath: source.kind === 'directory' ? source.path : source.mountDirectory,
      nfs: flags.nfs,
    });
    return flags;
  } catch (error) {
    if (isHornbillError(error, 'SHARE_MANAGER_CONFIG_INVALID')) throw usage(error.message);
    throw error;
  }
}

export async function shareManagerCommand(argv: string[]): Promise<number> {
  const flags = parseShareManagerFlags(argv);
  const log = stderrLogger('share-manager');
  const host = new LinuxHostOperations({ hostNamespaces: flags.hostNamespaces });
  // --iscsi-target: this process logs in (and out) itself; the instance manager does for --device.
  const iscsi = flags.source.kind === 'iscsi' ? flags.source : undefined;
  if (iscsi === undefined)
    return serve(
      flags,
      flags.source.kind === 'directory' ? flags.source : ({ ...flags.source, host } as ShareSource),
      log,
    );
  try {
    const device = await attachIscsiDevice(host, iscsi.endpoint, iscsi.fsType, log);
    const { fsType, mountDirectory } = iscsi;
    return await serve(flags, { kind: 'device', device, fsType, mountDirectory, host }, log);
  } finally {
    // After the unmount (a clean stop, or fenced after losing the lease), or a failed start.
    await detachIscsiDevice(host, iscsi.endpoint).catch((error: unknown) =>
      log('warn', 'logging out of the iSCSI target failed', { error: String(error) }),
    );
  }
}

async function serve(
  flags: ShareManagerFlags,
  source: ShareSource,
  log: ReturnType<typeof stderrLogger>,
): Promise<number> {
  const manager = await ShareManager.start({
    settings: {
      volume: flags.volume,
      address: flags.address,
      port: flags.port,
      stateDirectory: flags.stateDirectory,
      nfs: flags.nfs,
    },
    source,
    lease: await shareManagerLeaseClient(flags),
    leaseIdentity: flags.leaseIdentity,
    leaseTiming: leaseTimingFor(flags.leaseDurationMs),
    leaseAcquireTimeoutMs: flags.leaseWaitMs,
    healthPort: flags.healthPort,
    startTimeoutMs: flags.startTimeoutMs,
    stopTimeoutMs: flags.stopTimeoutMs,
    livenessIntervalMs: flags.livenessIntervalMs,
    log,
  });
  const info = manager.info();
  announce({
    role: 'share-manager',
    volume: info.volume,
    endpoint: info.endpoint,
    address: flags.address,
    port: flags.port,
    exportPath: info.exportPath,
    health: info.health,
    nfsPid: info.nfsPid,
    startToReadyMs: info.startToReadyMs,
    leaseIdentity: info.leaseIdentity,
    lease: describeLeaseLocation(leaseLocationOf(flags)),
    ...(flags.leaseBackend === 'file' ? { leaseFile: flags.leaseFile } : {}),
  });
  const failure = await Promise.race([
    untilSignal(() => manager.stop()).then(() => undefined),
    manager.finished.then(
      () => undefined,
      (error: unknown) => error,
    ),
  ]);
  if (failure !== undefined) throw failure;
  return ExitCode.OK;
}
