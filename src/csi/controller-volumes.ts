/**
 * Controller service, volumes: CreateVolume, DeleteVolume, ValidateVolumeCapabilities,
 * ListVolumes, ControllerGetVolume, ControllerExpandVolume. Each validates its arguments
 * first, then reads and writes Volume resources; the volume controller does the rest.
 */
import { HornbillError, isHornbillError } from '../errors.ts';
import type { Volume } from '../resources/kinds/volume.ts';
import { formatByteQuantity, parseByteQuantity } from '../resources/quantity.ts';
import {
  type CapacityRangeMessage,
  checkCapabilities,
  checkCapability,
  DEFAULT_VOLUME_BYTES,
  sizeFitsRange,
  sizeForRange,
  type VolumeCapabilityMessage,
  volumeServes,
} from './capabilities.ts';
import {
  type CsiDriverContext,
  findAttachment,
  findVolume,
  publishedNodes,
  storeOf,
  VOLUME_CONTEXT_ANNOTATION,
  volumeCondition,
  volumeMessage,
  volumeSizeBytes,
} from './context.ts';
import { CSI_NAME_ANNOTATION, paginate, parseSnapshotId, resourceNameFor } from './names.ts';
import { parseStorageClassParameters, volumeContextOf } from './parameters.ts';

// biome-ignore lint/suspicious/noExplicitAny: requests are what the proto loader decoded; each handler checks them
export type CsiRequest = Record<string, any>;

export function requireText(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '')
    throw new HornbillError('INVALID_ARGUMENT', `${field} is required`, { field });
  return value;
}

/** The source's dataSource text and its size, or NOT_FOUND / INVALID_ARGUMENT. */
async function contentSource(
  context: CsiDriverContext,
  source: CsiRequest | null | undefined,
): Promise<{ dataSource: string; sizeBytes: number } | undefined> {
  if (source === null || source === undefined) return undefined;
  if (source.type === 'snapshot' || source.snapshot) {
    const id = requireText(source.snapshot?.snapshot_id, 'volume_content_source.snapshot.snapshot_id');
    const parsed = parseSnapshotId(id);
    const snapshot =
      parsed === undefined
        ? undefined
        : await storeOf(context)
            .get({ kind: 'Snapshot', namespace: context.namespace, name: parsed.snapshot })
            .catch((error) => {
              if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
              throw error;
            });
    if (parsed === undefined || snapshot === undefined || snapshot.spec.volume !== parsed.volume)
      throw new HornbillError(
        'CSI_SNAPSHOT_NOT_FOUND',
        `source snapshot ${JSON.stringify(id)} does not exist`,
        { snapshotId: id },
      );
    if (snapshot.status?.readyToUse !== true)
      throw new HornbillError('CSI_VOLUME_NOT_READY', `source snapshot ${id} is not ready to use yet`, {
        snapshotId: id,
      });
    return { dataSource: id, sizeBytes: snapshot.status?.restoreSize ?? 0 };
  }
  if (source.type === 'volume' || source.volume) {
    const id = requireText(source.volume?.volume_id, 'volume_content_source.volume.volume_id');
    const volume =
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(id) && id.length <= 63
        ? await findVolume(context, id)
        : undefined;
    if (volume === undefined)
      throw new HornbillError('CSI_VOLUME_NOT_FOUND', `source volume ${JSON.stringify(id)} does not exist`, {
        volumeId: id,
      });
    return { dataSource: `vol://${id}`, sizeBytes: volumeSizeBytes(volume) };
  }
  throw new HornbillError('INVALID_ARGUMENT', 'volume_content_source names neither a snapshot nor a volume', {
    field: 'volume_content_source',
  });
}

export async function createVolume(context: CsiDriverContext, request: CsiRequest) {
  const csiName = requireText(request.name, 'name');
  const name = resourceNameFor(csiName, 'name');
  const { accessMode } = checkCapabilities(request.volume_capabilities);
  const parameters = parseStorageClassParameters(request.parameters ?? {});
  const source = await contentSource(context, request.volume_content_source);
  const range = request.capacity_range as CapacityRangeMessage | null;
  const sizeBytes = sizeForRange(range, {
    fallbackBytes: DEFAULT_VOLUME_BYTES,
    minimumBytes: source?.sizeBytes,
  });

  const existing = await findVolume(context, name);
  if (existing !== undefined)
    return { volume: volumeMessage(checkSame(existing, { range, source, accessMode, csiName })) };

  const annotations: Record<string, string> = {
    [VOLUME_CONTEXT_ANNOTATION]: JSON.stringify(volumeContextOf(parameters, accessMode)),
  };
  if (csiName !== name) annotations[CSI_NAME_ANNOTATION] = csiName;
  const { pvcName, pvcNamespace, pvName } = parameters.kubernetes;
  if (pvcName !== undefined) annotations['csi.hornbill.io/pvc-name'] = pvcName;
  if (pvcNamespace !== undefined) annotations['csi.hornbill.io/pvc-namespace'] = pvcNamespace;
  if (pvName !== undefined) annotations['csi.hornbill.io/pv-name'] = pvName;
  try {
    const volume = await storeOf(context).create({
      kind: 'Volume',
      metadata: {
        name,
        namespace: context.namespace,
        annotations,
        labels: { 'app.kubernetes.io/managed-by': 'hornbill-csi' },
      },
      spec: {
        ...parameters.spec,
        size: formatByteQuantity(sizeBytes),
        accessMode,
        ...(source === undefined ? {} : { dataSource: source.dataSource }),
      },
    });
    context.log('info', 'volume created', {
      volume: name,
      sizeBytes,
      accessMode,
      source: source?.dataSource,
    });
    return { volume: volumeMessage(volume) };
  } catch (error) {
    // A concurrent CreateVolume of the same name won: answer as the retry would.
    if (!isHornbillError(error, 'RESOURCE_ALREADY_EXISTS')) throw error;
    const raced = await findVolume(context, name);
    if (raced === undefined) throw error;
    return { volume: volumeMessage(checkSame(raced, { range, source, accessMode, csiName })) };
  }
}

/** An existing volume answers a repeated CreateVolume only when it is what was asked for. */
function checkSame(
  volume: Volume,
  asked: {
    range: CapacityRangeMessage | null;
    source: { dataSource: string } | undefined;
    accessMode: string;
    csiName: string;
  },
): Volume {
  const recorded = volume.metadata.annotations?.[CSI_NAME_ANNOTATION] ?? volume.metadata.name;
  const problems: string[] = [];
  if (recorded !== asked.csiName)
    problems.push(`it was created for the CSI name ${JSON.stringify(recorded)}`);
  if (!sizeFitsRange(volumeSizeBytes(volume), asked.range)) problems.push(`its size is ${volume.spec.size}`);
  if ((volume.spec.dataSource ?? '') !== (asked.source?.dataSource ?? ''))
    problems.push(`its source is ${volume.spec.dataSource ?? 'none'}`);
  if (volume.spec.accessMode !== asked.accessMode)
    problems.push(`its access mode is ${volume.spec.accessMode}`);
  if (problems.length > 0) {
    throw new HornbillError(
      'CSI_VOLUME_INCOMPATIBLE',
      `volume ${volume.metadata.name} exists, but ${problems.join('; ')}`,
      {
        volume: volume.metadata.name,
      },
    );
  }
  if (volume.metadata.deletionTimestamp !== undefined)
    throw new HornbillError('CSI_VOLUME_NOT_READY', `volume ${volume.metadata.name} is being deleted`, {
      volume: volume.metadata.name,
    });
  return volume;
}

/** The Volume a request names, or CSI_VOLUME_NOT_FOUND. */
export async function requireVolume(context: CsiDriverContext, volumeId: string): Promise<Volume> {
  const volume =
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(volumeId) && volumeId.length <= 63
      ? await findVolume(context, volumeId)
      : undefined;
  if (volume === undefined)
    throw new HornbillError('CSI_VOLUME_NOT_FOUND', `volume ${JSON.stringify(volumeId)} does not exist`, {
      volumeId,
    });
  return volume;
}

export async function deleteVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const volume = await findVolume(context, volumeId).catch((error) => {
    if (isHornbillError(error, 'RESOURCE_INVALID') || isHornbillError(error, 'INVALID_ARGUMENT'))
      return undefined;
    throw error;
  });
  if (volume === undefined || volume.metadata.deletionTimestamp !== undefined) return {};
  try {
    await storeOf(context).delete({ kind: 'Volume', namespace: context.namespace, name: volumeId });
    context.log('info', 'volume deleted', { volume: volumeId });
  } catch (error) {
    if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
  }
  return {};
}

export async function validateVolumeCapabilities(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const capabilities = request.volume_capabilities as VolumeCapabilityMessage[] | undefined;
  if (!capabilities || capabilities.length === 0)
    throw new HornbillError('INVALID_ARGUMENT', 'volume_capabilities is required', {
      field: 'volume_capabilities',
    });
  const volume = await requireVolume(context, volumeId);
  for (const [index, capability] of capabilities.entries()) {
    let message: string | undefined;
    try {
      const checked = checkCapability(capability, `volume_capabilities[${index}]`);
      if (!volumeServes(volume.spec.accessMode, checked))
        message = `volume ${volumeId} (${volume.spec.accessMode}) cannot serve ${checked.block ? 'block' : 'mount'} access in mode ${capability.access_mode?.mode}`;
    } catch (error) {
      if (!isHornbillError(error, 'CSI_CAPABILITY_UNSUPPORTED')) throw error;
      message = error.message;
    }
    if (message !== undefined) return { confirmed: null, message };
  }
  if (Object.keys(request.parameters ?? {}).length > 0) {
    try {
      parseStorageClassParameters(request.parameters);
    } catch (error) {
      if (!isHornbillError(error, 'CSI_PARAMETER_INVALID')) throw error;
      return { confirmed: null, message: error.message };
    }
  }
  return {
    confirmed: {
      volume_context: request.volume_context ?? {},
      volume_capabilities: capabilities,
      parameters: request.parameters ?? {},
    },
    message: '',
  };
}

async function volumeEntry(context: CsiDriverContext, volume: Volume) {
  const attachment = await findAttachment(context, volume.metadata.name);
  return {
    volume: volumeMessage(volume),
    status: { published_node_ids: publishedNodes(attachment), volume_condition: volumeCondition(volume) },
  };
}

export async function listVolumes(context: CsiDriverContext, request: CsiRequest) {
  const { items } = await storeOf(context).list('Volume', { namespace: context.namespace });
  const { page, nextToken } = paginate(
    items.filter((volume) => volume.metadata.deletionTimestamp === undefined),
    (volume) => volume.metadata.name,
    { max_entries: request.max_entries ?? 0, starting_token: request.starting_token ?? '' },
  );
  const entries = [];
  for (const volume of page) entries.push(await volumeEntry(context, volume));
  return { entries, next_token: nextToken };
}

export async function controllerGetVolume(context: CsiDriverContext, request: CsiRequest) {
  const volume = await requireVolume(context, requireText(request.volume_id, 'volume_id'));
  return volumeEntry(context, volume);
}

export async function controllerExpandVolume(context: CsiDriverContext, request: CsiRequest) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  if (request.capacity_range === null || request.capacity_range === undefined)
    throw new HornbillError('INVALID_ARGUMENT', 'capacity_range is required', { field: 'capacity_range' });
  const capability = request.volume_capability
    ? checkCapability(request.volume_capability, 'volume_capability')
    : undefined;
  const volume = await requireVolume(context, volumeId);
  const current = volumeSizeBytes(volume);
  const wanted = sizeForRange(request.capacity_range, { fallbackBytes: current });
  // A filesystem on a block volume grows on the node; a block device or an NFS share does not need it.
  const nodeExpansionRequired = volume.spec.accessMode !== 'rwx' && capability?.block !== true;
  if (wanted <= current) return { capacity_bytes: current, node_expansion_required: nodeExpansionRequired };
  const state = volume.status?.state;
  if (state !== 'attached' && state !== 'detached')
    throw new HornbillError(
      'CSI_VOLUME_BUSY',
      `volume ${volumeId} is ${state ?? 'creating'}; it can grow only attached or detached`,
      {
        volume: volumeId,
        state,
      },
    );
  const store = storeOf(context);
  const latest = await store.get({ kind: 'Volume', namespace: context.namespace, name: volumeId });
  if ((parseByteQuantity(latest.spec.size) ?? 0) < wanted) {
    await store.update({ ...latest, spec: { ...latest.spec, size: formatByteQuantity(wanted) } });
    context.log('info', 'volume expansion requested', {
      volume: volumeId,
      fromBytes: current,
      toBytes: wanted,
    });
  }
  return { capacity_bytes: wanted, node_expansion_required: nodeExpansionRequired };
}
