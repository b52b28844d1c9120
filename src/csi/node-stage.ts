/**
 * Node service, staging: NodeStageVolume logs the host's iSCSI initiator in to the engine's
 * target (publish_context.endpoint), finds the LUN by its /dev/disk/by-path link, makes a
 * filesystem when the device has none (`mkfs.ext4 -b 4096`, or xfs) and mounts it on the
 * staging path; block volumes stop at the device; RWX volumes mount the share manager's
 * NFSv4 export instead. NodeUnstageVolume undoes it.
 *
 * The seed's §4-1 failures are handled, not just reported:
 * - a session to the target left from an earlier attach (failed, or with no device, or to
 *   the engine's old portal) is logged out and logged in again;
 * - a device claimed by multipathd (a dm holder) or mounted somewhere else is refused with
 *   CSI_DEVICE_BUSY naming the holder or the mount point and the fix;
 * - a missing tool is CSI_HOST_TOOL_MISSING naming the package.
 */
import { HornbillError } from '../errors.ts';
import { type CheckedCapability, checkCapability } from './capabilities.ts';
import type { CsiDriverContext } from './context.ts';
import type { CsiRequest } from './controller-volumes.ts';
import { requireText } from './controller-volumes.ts';
import { missingToolMessage } from './host/requirements.ts';
import { type IscsiTarget, type MountEntry, parseIscsiEndpoint } from './host/types.ts';
import { DEFAULT_NFS_OPTIONS, nodeContextOf, splitArguments } from './parameters.ts';

/** How long a LUN's by-path link may take to appear after login. */
export const DEVICE_WAIT_MS = 20_000;

export function mountAt(mounts: readonly MountEntry[], target: string): MountEntry | undefined {
  return mounts.findLast((entry) => entry.mountPoint === target);
}

async function requireTools(context: CsiDriverContext, tools: string[]): Promise<void> {
  const report = await context.host.checkTools();
  const missing = tools.filter((tool) => report.tools[tool] !== true);
  if (missing.length > 0)
    throw new HornbillError('CSI_HOST_TOOL_MISSING', missing.map(missingToolMessage).join('; '), {
      tools: missing,
    });
}

/** The target of a block volume from publish_context, or INVALID_ARGUMENT. */
export function targetOf(request: CsiRequest): IscsiTarget {
  const endpoint = request.publish_context?.endpoint;
  if (typeof endpoint !== 'string' || endpoint === '')
    throw new HornbillError(
      'INVALID_ARGUMENT',
      'publish_context.endpoint is required (ControllerPublishVolume returns it)',
      {
        field: 'publish_context.endpoint',
      },
    );
  const target = parseIscsiEndpoint(endpoint);
  if (target === undefined)
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `publish_context.endpoint ${JSON.stringify(endpoint)} is not iscsi://HOST:PORT/IQN/LUN`,
      {
        field: 'publish_context.endpoint',
      },
    );
  return target;
}

/** Logs in (again, when a stale session is in the way) and returns the device. */
export async function attachIscsi(
  context: CsiDriverContext,
  volumeId: string,
  target: IscsiTarget,
): Promise<string> {
  const { host, log } = context;
  const portal = `${target.host}:${target.port}`;
  const sessions = (await host.iscsiSessions()).filter((session) => session.iqn === target.iqn);
  const healthy = sessions.find(
    (session) => session.portal === portal && session.sessionState === 'LOGGED_IN',
  );
  let stale = sessions.length > 0 && healthy === undefined;
  if (healthy !== undefined && (await host.findDevice(target, 2000)) === undefined) stale = true;
  if (stale) {
    log('warn', 'stale iSCSI session: logging out and in again', {
      volume: volumeId,
      target: target.iqn,
      sessions: sessions.map((session) => ({
        sid: session.sid,
        portal: session.portal,
        state: session.sessionState,
      })),
    });
    await host.iscsiLogout({ iqn: target.iqn });
  }
  if (stale || healthy === undefined) await host.iscsiLogin(target);
  const device = await host.findDevice(target, DEVICE_WAIT_MS);
  if (device === undefined)
    throw new HornbillError(
      'CSI_DEVICE_NOT_FOUND',
      `logged in to ${target.iqn} at ${portal}, but no device appeared for LUN ${target.lun} within ${DEVICE_WAIT_MS / 1000} s (is udev running?)`,
      { volume: volumeId, target: target.iqn },
    );
  return device;
}

/**
 * CSI_DEVICE_BUSY when multipathd holds the device or it is mounted where `allowed` says no;
 * with countDeviceNodeBinds, bind mounts of the device node (block publishes) count too.
 */
export async function checkDeviceFree(
  context: CsiDriverContext,
  volumeId: string,
  device: string,
  allowed: (mountPoint: string) => boolean,
  options: { countDeviceNodeBinds?: boolean; checkHolders?: boolean } = {},
): Promise<void> {
  const holders = options.checkHolders === false ? [] : await context.host.deviceHolders(device);
  if (holders.length > 0)
    throw new HornbillError(
      'CSI_DEVICE_BUSY',
      `${device} (volume ${volumeId}) is claimed by ${holders.join(', ')} — multipathd took it. Fix: add \`blacklist { device { vendor "HORNBILL" } }\` to /etc/multipath.conf, run \`systemctl restart multipathd\` and \`multipath -f ${holders[0]}\`; the next attempt mounts it`,
      { volume: volumeId, device, holders },
    );
  const number = await context.host.deviceNumber(device);
  const node = `/${device.split('/').pop()}`;
  const elsewhere = (await context.host.mounts()).filter(
    (entry) =>
      !allowed(entry.mountPoint) &&
      (entry.majorMinor === number ||
        (options.countDeviceNodeBinds && entry.fsType === 'devtmpfs' && entry.root === node)),
  );
  if (elsewhere.length > 0)
    throw new HornbillError(
      'CSI_DEVICE_BUSY',
      `${device} (volume ${volumeId}) is already mounted at ${elsewhere.map((entry) => entry.mountPoint).join(', ')}. Fix: stop what uses it and \`umount ${elsewhere[0].mountPoint}\`, or \`iscsiadm -m session -u\` a leftover session; the next attempt mounts it`,
      { volume: volumeId, device, mountPoints: elsewhere.map((entry) => entry.mountPoint) },
    );
}

function isShared(request: CsiRequest, capability: CheckedCapability): boolean {
  return capability.accessMode === 'rwx' || request.volume_context?.accessMode === 'rwx';
}

export async function nodeStageVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const staging = requireText(request.staging_target_path, 'staging_target_path');
  const capability = checkCapability(request.volume_capability, 'volume_capability');
  const volumeContext = nodeContextOf(request.volume_context);
  if (isShared(request, capability)) return stageShare(context, request, volumeId, staging, capability);
  const target = targetOf(request);
  const { host } = context;
  await requireTools(context, capability.block ? ['iscsiadm'] : ['iscsiadm', 'blkid', 'mount']);
  const existing = mountAt(await host.mounts(), staging);
  const device = await attachIscsi(context, volumeId, target);
  if (existing !== undefined) {
    if (existing.majorMinor === (await host.deviceNumber(device))) return {};
    throw new HornbillError(
      'CSI_VOLUME_INCOMPATIBLE',
      `staging path ${staging} already has ${existing.source} mounted, not volume ${volumeId}`,
      { volume: volumeId, staging, source: existing.source },
    );
  }
  await checkDeviceFree(context, volumeId, device, () => false);
  if (capability.block) {
    context.log('info', 'volume staged (block)', { volume: volumeId, device });
    return {};
  }
  const requested: string = capability.fsType || volumeContext.fsType || '';
  const found = await host.filesystemType(device);
  const fsType = found ?? (requested || 'ext4');
  if (found === undefined) {
    await requireTools(context, [`mkfs.${fsType}`]);
    const extra = splitArguments(volumeContext.mkfsParams ?? '');
    await host.makeFilesystem(device, fsType, fsType === 'ext4' ? ['-b', '4096', ...extra] : extra);
  } else if (requested !== '' && requested !== fsType) {
    throw new HornbillError(
      'CSI_FILESYSTEM_MISMATCH',
      `volume ${volumeId} holds ${fsType}, not the ${requested} asked for; it is not reformatted (data would be lost)`,
      { volume: volumeId, found: fsType, requested },
    );
  }
  const options = [...capability.mountFlags];
  if (fsType === 'xfs' && !options.includes('nouuid')) options.push('nouuid');
  await host.makeDirectory(staging);
  await host.mount({ source: device, target: staging, fsType, options });
  context.log('info', 'volume staged', { volume: volumeId, device, fsType, staging });
  return {};
}

/** RWX: mount the share manager's NFSv4 export on the staging path. */
async function stageShare(
  context: CsiDriverContext,
  request: CsiRequest,
  volumeId: string,
  staging: string,
  capability: CheckedCapability,
) {
  const endpoint = request.publish_context?.shareEndpoint ?? request.volume_context?.shareEndpoint;
  const match = typeof endpoint === 'string' ? /^nfs:\/\/([^/\s]+)\/(.+)$/.exec(endpoint) : null;
  if (match === null)
    throw new HornbillError(
      'CSI_VOLUME_NOT_READY',
      `volume ${volumeId} has no share endpoint yet (nfs://HOST/VOLUME); retry later`,
      {
        volume: volumeId,
      },
    );
  const source = `${match[1]}:/${match[2]}`;
  const existing = mountAt(await context.host.mounts(), staging);
  if (existing !== undefined) {
    if (existing.source === source) return {};
    throw new HornbillError(
      'CSI_VOLUME_INCOMPATIBLE',
      `staging path ${staging} already has ${existing.source} mounted`,
      {
        volume: volumeId,
        staging,
      },
    );
  }
  await requireTools(context, ['mount.nfs4']);
  const nfsOptions = nodeContextOf(request.volume_context).nfsOptions ?? DEFAULT_NFS_OPTIONS;
  const options = [...nfsOptions.split(','), ...capability.mountFlags];
  await context.host.makeDirectory(staging);
  await context.host.mount({ source, target: staging, fsType: 'nfs4', options });
  context.log('info', 'volume staged (nfs)', { volume: volumeId, source, staging });
  return {};
}

export async function nodeUnstageVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const staging = requireText(request.staging_target_path, 'staging_target_path');
  const { host } = context;
  const report = await host.checkTools();
  const sessions =
    report.tools.iscsiadm === true
      ? (await host.iscsiSessions()).filter((session) => session.iqn.endsWith(`:${volumeId}`))
      : [];
  // Never unstage from under a pod: the device mounted or bound anywhere but the staging
  // path means the volume is still published (NodeUnpublishVolume comes first).
  for (const session of sessions)
    for (const disk of session.disks)
      await checkDeviceFree(
        context,
        volumeId,
        `/dev/${disk.device}`,
        (mountPoint) => mountPoint === staging,
        {
          countDeviceNodeBinds: true,
          checkHolders: false,
        },
      );
  for (let round = 0; round < 4 && mountAt(await host.mounts(), staging) !== undefined; round++)
    await host.unmount(staging);
  if ((await host.pathKind(staging)) === 'directory') await host.removePath(staging);
  if (sessions.length > 0) {
    await host.iscsiLogout({ iqn: sessions[0].iqn });
    context.log('info', 'volume unstaged', { volume: volumeId, target: sessions[0].iqn });
  }
  return {};
}
