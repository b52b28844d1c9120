/**
 * Controller service, attach and detach: ControllerPublishVolume adds a `csi-attacher`
 * ticket for the node to the volume's VolumeAttachment (named after the volume) and waits
 * until the volume controller has attached it there; ControllerUnpublishVolume removes the
 * ticket and waits until the volume has left the node.
 *
 * - publish_context: `endpoint` (the engine's `iscsi://HOST:PORT/IQN/LUN`) for block
 *   volumes; `shareEndpoint` (`nfs://HOST/VOLUME`) for RWX volumes, whose attachment is the
 *   share manager's business (no ticket here).
 * - Not ready now (creating, being deleted, faulted, share not running) → ABORTED; the
 *   attacher retries. Waiting past the call's deadline → DEADLINE_EXCEEDED; the ticket stays,
 *   so the retry finds the volume attached or closer to it.
 * - A single-node volume published to another node → FAILED_PRECONDITION.
 * - A node whose CSI plugin reported missing host tools for the volume (Node condition
 *   RequiredPackages False for block volumes, NFSClientInstalled False for RWX) →
 *   FAILED_PRECONDITION at once, with the condition's fix.
 */
import { nodeCanServe } from '../controllers/node-conditions.ts';
import { HornbillError, isHornbillError } from '../errors.ts';
import type { Node } from '../resources/kinds/node.ts';
import type { Volume } from '../resources/kinds/volume.ts';
import type { AttachmentTicket, VolumeAttachment } from '../resources/kinds/volume-attachment.ts';
import { findResource } from '../resources/store/helpers.ts';
import { checkCapability, volumeServes } from './capabilities.ts';
import {
  type CallDeadline,
  type CsiDriverContext,
  findAttachment,
  findVolume,
  storeOf,
  waitUntil,
} from './context.ts';
import { type CsiRequest, requireText, requireVolume } from './controller-volumes.ts';
import { attachTicketId } from './names.ts';

function isAttachedOn(volume: Volume | undefined, nodeId: string): boolean {
  return (
    volume !== undefined &&
    volume.status?.state === 'attached' &&
    volume.status.currentNodeID === nodeId &&
    typeof volume.status.endpoint === 'string' &&
    volume.status.endpoint !== ''
  );
}

function notReady(volume: Volume, why: string): HornbillError {
  return new HornbillError('CSI_VOLUME_NOT_READY', `volume ${volume.metadata.name} ${why}; retry later`, {
    volume: volume.metadata.name,
    state: volume.status?.state,
    robustness: volume.status?.robustness,
  });
}

/**
 * A node whose plugin reported it cannot serve the volume (RequiredPackages False for a
 * block volume, NFSClientInstalled False for RWX) is refused at once, with the condition's
 * fix, instead of attaching and failing at NodeStage.
 */
function refuseUnservedNode(node: Node, volume: Volume): void {
  const service = volume.spec.accessMode === 'rwx' ? 'nfs-client' : 'block';
  const verdict = nodeCanServe(node, service);
  if (verdict.serves) return;
  throw new HornbillError(
    'CSI_NODE_REQUIREMENTS_MISSING',
    `node ${verdict.node} cannot serve volume ${volume.metadata.name} (${volume.spec.accessMode}): its condition ${verdict.missing} is False (${verdict.condition.reason}): ${verdict.condition.message}`,
    {
      nodeId: verdict.node,
      volume: volume.metadata.name,
      condition: verdict.missing,
      reason: verdict.condition.reason,
    },
  );
}

/** Adds the ticket (creating the VolumeAttachment when needed); nothing when it is there. */
async function ensureTicket(
  context: CsiDriverContext,
  volume: Volume,
  ticket: AttachmentTicket,
): Promise<void> {
  const store = storeOf(context);
  const name = volume.metadata.name;
  for (let attempt = 0; attempt < 5; attempt++) {
    const attachment = await findAttachment(context, name);
    if (attachment === undefined) {
      try {
        await store.create({
          kind: 'VolumeAttachment',
          metadata: {
            name,
            namespace: context.namespace,
            ownerReferences: [
              { apiVersion: volume.apiVersion, kind: 'Volume', name, uid: volume.metadata.uid },
            ],
          },
          spec: { volume: name, attachmentTickets: { [ticket.id]: ticket } },
        });
        return;
      } catch (error) {
        if (!isHornbillError(error, 'RESOURCE_ALREADY_EXISTS')) throw error;
        continue;
      }
    }
    if (attachment.spec.attachmentTickets[ticket.id]?.nodeID === ticket.nodeID) return;
    try {
      await store.patch(
        { kind: 'VolumeAttachment', namespace: context.namespace, name },
        {
          metadata: { resourceVersion: attachment.metadata.resourceVersion },
          spec: { attachmentTickets: { [ticket.id]: ticket } },
        },
      );
      return;
    } catch (error) {
      if (!isHornbillError(error, 'RESOURCE_CONFLICT')) throw error;
    }
  }
  throw new HornbillError('RESOURCE_CONFLICT', `the VolumeAttachment of ${name} kept changing; retry`, {
    volume: name,
  });
}

export async function controllerPublishVolume(
  context: CsiDriverContext,
  request: CsiRequest,
  deadline: CallDeadline,
) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const nodeId = requireText(request.node_id, 'node_id');
  const capability = checkCapability(request.volume_capability, 'volume_capability');
  const volume = await requireVolume(context, volumeId);
  const node = await findResource(storeOf(context), {
    kind: 'Node',
    namespace: context.namespace,
    name: nodeId,
  }).catch((error) => {
    if (isHornbillError(error, 'RESOURCE_INVALID') || isHornbillError(error, 'INVALID_ARGUMENT'))
      return undefined;
    throw error;
  });
  if (node === undefined)
    throw new HornbillError('CSI_NODE_NOT_FOUND', `node ${JSON.stringify(nodeId)} is not a Hornbill node`, {
      nodeId,
    });
  if (!volumeServes(volume.spec.accessMode, capability))
    throw new HornbillError(
      'CSI_CAPABILITY_UNSUPPORTED',
      `volume ${volumeId} (${volume.spec.accessMode}) cannot be published with ${capability.block ? 'block' : 'mount'} access in mode ${request.volume_capability.access_mode.mode}`,
      { volume: volumeId },
    );
  refuseUnservedNode(node, volume);
  if (volume.metadata.deletionTimestamp !== undefined) throw notReady(volume, 'is being deleted');
  const readonly = request.readonly === true ? 'true' : 'false';
  if (volume.spec.accessMode === 'rwx') return publishShared(context, volume, deadline, readonly);

  const ticketId = attachTicketId(volumeId, nodeId);
  const attachment = await findAttachment(context, volumeId);
  const elsewhere = Object.values(attachment?.spec.attachmentTickets ?? {}).find(
    (ticket) => ticket.type === 'csi-attacher' && ticket.nodeID !== nodeId,
  );
  if (elsewhere !== undefined)
    throw new HornbillError(
      'CSI_VOLUME_PUBLISHED_ELSEWHERE',
      `volume ${volumeId} is published to node ${elsewhere.nodeID}; it can be attached to one node at a time`,
      { volume: volumeId, nodeId: elsewhere.nodeID },
    );
  if (volume.status?.state === undefined || volume.status.state === 'creating')
    throw notReady(volume, 'is still being created');
  if (volume.status.robustness === 'faulted' && !isAttachedOn(volume, nodeId))
    throw notReady(volume, 'is faulted (no healthy replica); it attaches after salvage');
  await ensureTicket(context, volume, {
    id: ticketId,
    type: 'csi-attacher',
    nodeID: nodeId,
    parameters: {},
    generation: 0,
  });
  const attached = await waitUntil(
    context,
    deadline,
    `volume ${volumeId} to attach on node ${nodeId}`,
    async () => {
      const latest = await findVolume(context, volumeId);
      if (latest === undefined || latest.metadata.deletionTimestamp !== undefined)
        throw new HornbillError('CSI_VOLUME_NOT_FOUND', `volume ${volumeId} was deleted while attaching`, {
          volumeId,
        });
      return isAttachedOn(latest, nodeId) ? latest : undefined;
    },
  );
  context.log('info', 'volume published', {
    volume: volumeId,
    node: nodeId,
    endpoint: attached.status?.endpoint,
  });
  return {
    publish_context: {
      endpoint: attached.status?.endpoint ?? '',
      accessMode: attached.spec.accessMode,
      readonly,
    },
  };
}

/** RWX: the share manager attaches the volume; publishing waits for its NFS endpoint. */
async function publishShared(
  context: CsiDriverContext,
  volume: Volume,
  deadline: CallDeadline,
  readonly: string,
) {
  const name = volume.metadata.name;
  const ready = (candidate: Volume | undefined) =>
    candidate?.status?.shareState === 'running' && (candidate.status.shareEndpoint ?? '') !== ''
      ? candidate
      : undefined;
  if (ready(volume) === undefined && volume.status?.shareState !== 'starting')
    throw notReady(
      volume,
      `has no running share manager (share state ${volume.status?.shareState ?? 'none'})`,
    );
  const shared = await waitUntil(context, deadline, `the share manager of ${name} to run`, async () =>
    ready(await findVolume(context, name)),
  );
  return {
    publish_context: { shareEndpoint: shared.status?.shareEndpoint ?? '', accessMode: 'rwx', readonly },
  };
}

export async function controllerUnpublishVolume(
  context: CsiDriverContext,
  request: CsiRequest,
  deadline: CallDeadline,
) {
  const volumeId = requireText(request.volume_id, 'volume_id');
  const nodeId = typeof request.node_id === 'string' ? request.node_id : '';
  const volume = await findVolume(context, volumeId).catch((error) => {
    if (isHornbillError(error, 'RESOURCE_INVALID') || isHornbillError(error, 'INVALID_ARGUMENT'))
      return undefined;
    throw error;
  });
  if (volume === undefined) return {};
  const removed = await removeTickets(context, volumeId, nodeId);
  if (volume.spec.accessMode === 'rwx') return {};
  const nodes = nodeId === '' ? removed : [nodeId];
  await waitUntil(
    context,
    deadline,
    `volume ${volumeId} to detach from ${nodes.join(', ') || 'its nodes'}`,
    async () => {
      const latest = await findVolume(context, volumeId);
      if (latest === undefined || latest.metadata.deletionTimestamp !== undefined) return true;
      const attachment = await findAttachment(context, volumeId);
      const stillWanted = new Set(
        Object.values(attachment?.spec.attachmentTickets ?? {}).map((ticket) => ticket.nodeID),
      );
      const current = latest.status?.currentNodeID;
      // Done when the volume is on none of those nodes, or another ticket (share manager, API) keeps it there.
      const done = nodes.every((node) => current !== node || stillWanted.has(node));
      return done && latest.status?.state !== 'detaching' ? true : undefined;
    },
  );
  context.log('info', 'volume unpublished', { volume: volumeId, node: nodeId || '(all)' });
  return {};
}

/** Removes the csi-attacher tickets for `nodeId` ('' for every node); returns their nodes. */
async function removeTickets(context: CsiDriverContext, volumeId: string, nodeId: string): Promise<string[]> {
  const store = storeOf(context);
  for (let attempt = 0; attempt < 5; attempt++) {
    const attachment: VolumeAttachment | undefined = await findAttachment(context, volumeId);
    if (attachment === undefined) return nodeId === '' ? [] : [nodeId];
    const doomed = Object.values(attachment.spec.attachmentTickets).filter(
      (ticket) => ticket.type === 'csi-attacher' && (nodeId === '' || ticket.nodeID === nodeId),
    );
    if (doomed.length === 0) return nodeId === '' ? [] : [nodeId];
    const tickets: Record<string, null> = {};
    for (const ticket of doomed) tickets[ticket.id] = null;
    try {
      await store.patch(
        { kind: 'VolumeAttachment', namespace: context.namespace, name: volumeId },
        {
          metadata: { resourceVersion: attachment.metadata.resourceVersion },
          spec: { attachmentTickets: tickets },
        },
      );
      return [...new Set(doomed.map((ticket) => ticket.nodeID))];
    } catch (error) {
      if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return [];
      if (!isHornbillError(error, 'RESOURCE_CONFLICT')) throw error;
    }
  }
  throw new HornbillError('RESOURCE_CONFLICT', `the VolumeAttachment of ${volumeId} kept changing; retry`, {
    volume: volumeId,
  });
}
