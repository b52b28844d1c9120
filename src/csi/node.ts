/**
 * Node service: staging (node-stage.ts), NodePublish/Unpublish (bind mounts of the staging
 * path, or of the device for block volumes; read-only when asked), NodeExpandVolume
 * (rescan the iSCSI session, then resize2fs / xfs_growfs), NodeGetVolumeStats (statfs;
 * abnormal when the Volume is degraded or faulted), NodeGetInfo, NodeGetCapabilities.
 */
import { HornbillError, isHornbillError } from '../errors.ts';
import { findResource } from '../resources/store/helpers.ts';
import { checkCapability } from './capabilities.ts';
import { TOPOLOGY_HOSTNAME_KEY, TOPOLOGY_REGION_KEY, TOPOLOGY_ZONE_KEY } from './capacity.ts';
import { type CallDeadline, type CsiDriverContext, volumeCondition } from './context.ts';
import { type CsiRequest, requireText } from './controller-volumes.ts';
import { nodeGetCapabilities } from './identity.ts';
import { mountAt, nodeStageVolume, nodeUnstageVolume, targetOf } from './node-stage.ts';

async function nodePublishVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const targetPath = requireText(request.target_path, 'target_path');
  const capability = checkCapability(request.volume_capability, 'volume_capability');
  const staging = typeof request.staging_target_path === 'string' ? request.staging_target_path : '';
  if (staging === '')
    throw new HornbillError(
      'CSI_NOT_STAGED',
      'staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)',
      {
        field: 'staging_target_path',
      },
    );
  const { host } = context;
  const mounts = await host.mounts();
  const readonly = request.readonly === true || capability.readOnlyMode;
  if (mountAt(mounts, targetPath) !== undefined) return {};
  const options = ['bind', ...(readonly ? ['ro'] : [])];
  if (capability.block) {
    const device = await host.findDevice(targetOf(request), 0);
    if (device === undefined)
      throw new HornbillError(
        'CSI_NOT_STAGED',
        `volume ${volumeId} is not staged on this node: its iSCSI device is not there`,
        {
          volume: volumeId,
        },
      );
    await host.makeFile(targetPath);
    await host.mount({ source: device, target: targetPath, options });
  } else {
    if (mountAt(mounts, staging) === undefined)
      throw new HornbillError('CSI_NOT_STAGED', `volume ${volumeId} is not staged at ${staging}`, {
        volume: volumeId,
        staging,
      });
    await host.makeDirectory(targetPath);
    await host.mount({
      source: staging,
      target: targetPath,
      options: [...options, ...capability.mountFlags],
    });
  }
  context.log('info', 'volume published on node', { volume: volumeId, target: targetPath, readonly });
  return {};
}

async function nodeUnpublishVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const targetPath = requireText(request.target_path, 'target_path');
  const { host } = context;
  for (let round = 0; round < 4 && mountAt(await host.mounts(), targetPath) !== undefined; round++)
    await host.unmount(targetPath);
  await host.removePath(targetPath);
  context.log('info', 'volume unpublished on node', { volume: volumeId, target: targetPath });
  return {};
}

/** The volume's condition from its resource; NOT_FOUND when the store says it is gone. */
async function conditionOf(context: CsiDriverContext, volumeId: string) {
  if (context.store === undefined)
    return { abnormal: false, message: 'the plugin has no resource store to ask' };
  try {
    const volume = await findResource(context.store, {
      kind: 'Volume',
      namespace: context.namespace,
      name: volumeId,
    });
    if (volume === undefined)
      throw new HornbillError('CSI_VOLUME_NOT_FOUND', `volume ${volumeId} does not exist`, { volumeId });
    return volumeCondition(volume);
  } catch (error) {
    if (isHornbillError(error, 'CSI_VOLUME_NOT_FOUND')) throw error;
    return { abnormal: false, message: `the volume's state cannot be read now: ${(error as Error).message}` };
  }
}

async function nodeGetVolumeStats(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const volumePath = requireText(request.volume_path, 'volume_path');
  const { host } = context;
  const kind = await host.pathKind(volumePath);
  if (kind === undefined)
    throw new HornbillError('CSI_VOLUME_NOT_FOUND', `volume ${volumeId} is not at ${volumePath}`, {
      volumeId,
      volumePath,
    });
  const condition = await conditionOf(context, volumeId);
  const entry = mountAt(await host.mounts(), volumePath);
  if (kind === 'block' || kind === 'file') {
    const device = entry !== undefined && entry.fsType === 'devtmpfs' ? `/dev${entry.root}` : volumePath;
    const total = await host.deviceSizeBytes(device);
    return { usage: [{ total, available: 0, used: 0, unit: 'BYTES' }], volume_condition: condition };
  }
  const stats = await host.statFilesystem(volumePath);
  return {
    usage: [
      { total: stats.totalBytes, available: stats.availableBytes, used: stats.usedBytes, unit: 'BYTES' },
      { total: stats.totalInodes, available: stats.freeInodes, used: stats.usedInodes, unit: 'INODES' },
    ],
    volume_condition:
      entry === undefined && !condition.abnormal
        ? { abnormal: true, message: `${volumePath} is not a mount point: the volume is not mounted there` }
        : condition,
  };
}

async function nodeExpandVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const volumePath = requireText(request.volume_path, 'volume_path');
  const capability = request.volume_capability
    ? checkCapability(request.volume_capability, 'volume_capability')
    : undefined;
  const required = Number(request.capacity_range?.required_bytes ?? 0);
  const { host } = context;
  if ((await host.pathKind(volumePath)) === undefined)
    throw new HornbillError('CSI_VOLUME_NOT_FOUND', `volume ${volumeId} is not at ${volumePath}`, {
      volumeId,
      volumePath,
    });
  const sessions = (await host.iscsiSessions()).filter((session) => session.iqn.endsWith(`:${volumeId}`));
  for (const session of sessions) {
    const [host_, port] = session.portal.split(':');
    for (const disk of session.disks)
      await host.iscsiRescan({ host: host_, port: Number(port), iqn: session.iqn, lun: disk.lun });
  }
  const entry = mountAt(await host.mounts(), volumePath);
  if (
    capability?.block === true ||
    entry === undefined ||
    entry.fsType === 'devtmpfs' ||
    entry.fsType.startsWith('nfs')
  )
    return { capacity_bytes: required };
  await host.resizeFilesystem(entry.source, volumePath, entry.fsType);
  const device = entry.source;
  const size = await host.deviceSizeBytes(device).catch(() => required);
  context.log('info', 'filesystem expanded', {
    volume: volumeId,
    device,
    fsType: entry.fsType,
    sizeBytes: size,
  });
  return { capacity_bytes: size };
}

async function nodeGetInfo(context: CsiDriverContext) {
  const segments: Record<string, string> = { [TOPOLOGY_HOSTNAME_KEY]: context.nodeId };
  let { zone, region } = context;
  if ((zone === undefined || region === undefined) && context.store !== undefined) {
    const node = await findResource(context.store, {
      kind: 'Node',
      namespace: context.namespace,
      name: context.nodeId,
    }).catch(() => undefined);
    zone ??= node?.status?.zone;
    region ??= node?.status?.region;
  }
  if (zone) segments[TOPOLOGY_ZONE_KEY] = zone;
  if (region) segments[TOPOLOGY_REGION_KEY] = region;
  return { node_id: context.nodeId, max_volumes_per_node: 0, accessible_topology: { segments } };
}

export function nodeHandlers(
  context: CsiDriverContext,
): Record<string, (request: CsiRequest, deadline: CallDeadline) => unknown> {
  return {
    NodeStageVolume: (request) => nodeStageVolume(context, request),
    NodeUnstageVolume: (request) => nodeUnstageVolume(context, request),
    NodePublishVolume: (request) => nodePublishVolume(context, request),
    NodeUnpublishVolume: (request) => nodeUnpublishVolume(context, request),
    NodeGetVolumeStats: (request) => nodeGetVolumeStats(context, request),
    NodeExpandVolume: (request) => nodeExpandVolume(context, request),
    NodeGetCapabilities: () => nodeGetCapabilities(),
    NodeGetInfo: () => nodeGetInfo(context),
  };
}
