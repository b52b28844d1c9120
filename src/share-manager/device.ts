/**
 * Mounting the volume's block device before it is exported, and unmounting it after.
 *
 * Through the CSI driver's `HostOperations` (src/csi/host/types.ts), the narrow part the
 * share manager needs: the device must exist and carry a filesystem of the expected type —
 * the share manager never formats (the CSI driver or the controller does, once) and never
 * runs fsck; it mounts, or finds the device already mounted on the mount folder (a restart)
 * and uses that. `unmountVolume` undoes only a mount this process made.
 *
 * Before that, whoever holds the engine's iSCSI target logs in to it: the instance manager for
 * a share manager it hosts (share-manager-host.ts), or the share manager itself in a Pod of its
 * own (`--iscsi-target`): `attachIscsiDevice` logs in, finds the LUN's device and formats a new
 * volume once (the only place a volume is formatted for a share manager); `detachIscsiDevice`
 * logs out.
 */
import { type HostOperations, parseIscsiEndpoint } from '../csi/host/types.ts';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';

export type ShareHostOperations = Pick<
  HostOperations,
  'pathKind' | 'filesystemType' | 'deviceNumber' | 'mounts' | 'makeDirectory' | 'mount' | 'unmount'
>;

export const SUPPORTED_FILESYSTEMS = ['ext4', 'xfs'] as const;

export interface VolumeMountRequest {
  device: string;
  mountDirectory: string;
  fsType: (typeof SUPPORTED_FILESYSTEMS)[number];
}

/** Mount options per filesystem: xfs needs nouuid (a restored snapshot shares its uuid). */
export function mountOptionsFor(fsType: string): string[] {
  return fsType === 'xfs' ? ['nouuid'] : [];
}

/** Mounts the device (or finds it mounted there); true when this call mounted it. */
export async function mountVolume(
  host: ShareHostOperations,
  request: VolumeMountRequest,
  log: Logger,
): Promise<boolean> {
  const { device, mountDirectory, fsType } = request;
  const kind = await host.pathKind(device);
  if (kind !== 'block') {
    throw new HornbillError(
      'SHARE_MANAGER_DEVICE_INVALID',
      kind === undefined ? `${device} does not exist` : `${device} is not a block device (it is a ${kind})`,
      { device },
    );
  }
  const found = await host.filesystemType(device);
  if (found === undefined) {
    throw new HornbillError(
      'SHARE_MANAGER_DEVICE_INVALID',
      `${device} carries no filesystem; the share manager does not format volumes (the CSI driver formats it when first staged)`,
      { device },
    );
  }
  if (found !== fsType) {
    throw new HornbillError('SHARE_MANAGER_DEVICE_INVALID', `${device} carries ${found}, not ${fsType}`, {
      device,
      found,
      expected: fsType,
    });
  }
  const majorMinor = await host.deviceNumber(device);
  const existing = (await host.mounts()).find((entry) => entry.mountPoint === mountDirectory);
  if (existing !== undefined) {
    if (existing.majorMinor === majorMinor && existing.root === '/') {
      log('info', 'the volume is already mounted; using it', { device, mountDirectory });
      return false;
    }
    throw new HornbillError(
      'SHARE_MANAGER_DEVICE_INVALID',
      `${mountDirectory} already has ${existing.source} mounted on it, not ${device}`,
      { device, mountDirectory, mounted: existing.source },
    );
  }
  await host.makeDirectory(mountDirectory);
  await host.mount({ source: device, target: mountDirectory, fsType, options: mountOptionsFor(fsType) });
  log('info', 'mounted the volume', { device, mountDirectory, fsType });
  return true;
}

export async function unmountVolume(
  host: ShareHostOperations,
  mountDirectory: string,
  log: Logger,
): Promise<void> {
  await host.unmount(mountDirectory);
  log('info', 'unmounted the volume', { mountDirectory });
}

export type IscsiHostOperations = Pick<
  HostOperations,
  'iscsiLogin' | 'iscsiLogout' | 'findDevice' | 'filesystemType' | 'makeFilesystem'
>;

const DEVICE_WAIT_MS = 30_000;

/**
 * Logs in to the engine's target (`iscsi://HOST:PORT/IQN/LUN`), finds the LUN's device and
 * formats it with `fsType` when it carries no filesystem; the device path.
 * SHARE_MANAGER_DEVICE_INVALID when the endpoint is not one, no device appears within
 * `waitMs`, or it carries another filesystem.
 */
export async function attachIscsiDevice(
  host: IscsiHostOperations,
  endpoint: string,
  fsType: (typeof SUPPORTED_FILESYSTEMS)[number],
  log: Logger,
  waitMs = DEVICE_WAIT_MS,
): Promise<string> {
  const target = parseIscsiEndpoint(endpoint);
  if (target === undefined)
    throw new HornbillError('SHARE_MANAGER_DEVICE_INVALID', `${endpoint} is not iscsi://HOST:PORT/IQN/LUN`, {
      endpoint,
    });
  await host.iscsiLogin(target);
  const device = await host.findDevice(target, waitMs);
  if (device === undefined)
    throw new HornbillError('SHARE_MANAGER_DEVICE_INVALID', `no device appeared for ${endpoint}`, {
      endpoint,
    });
  const found = await host.filesystemType(device);
  if (found === undefined) {
    log('info', 'formatting the new volume for its share manager', { device, fsType });
    await host.makeFilesystem(device, fsType, []);
  } else if (found !== fsType) {
    throw new HornbillError('SHARE_MANAGER_DEVICE_INVALID', `${device} carries ${found}, not ${fsType}`, {
      device,
      found,
      expected: fsType,
    });
  }
  return device;
}

/** Logs out of the engine's target (nothing for an endpoint that is not iSCSI). */
export async function detachIscsiDevice(host: IscsiHostOperations, endpoint: string): Promise<void> {
  const target = parseIscsiEndpoint(endpoint);
  if (target !== undefined) await host.iscsiLogout(target);
}
