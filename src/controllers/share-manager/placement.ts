/**
 * Where a share manager runs and how the controller sees it there: the candidate nodes and
 * their readiness, the nodes holding the volume's replicas, the probe of the share manager on
 * its node (hosting.ts), the `share-manager` attachment ticket, and the clean-up of nodes it left.
 */
import { HornbillError } from '../../errors.ts';
import type { Node, ShareManager, VolumeAttachment } from '../../resources/index.ts';
import { getOrUndefined } from '../context.ts';
import { nodeCanServe } from '../node-conditions.ts';
import type { NodeCandidate } from './decisions.ts';
import { PREVIOUS_NODES_ANNOTATION, type ShareManagerWorld, ticketId } from './world.ts';

const PROBE_DEADLINE_MS = 2_000;

export async function nodeCandidates(
  world: ShareManagerWorld,
): Promise<{ nodes: Node[]; candidates: NodeCandidate[] }> {
  const nodes = (await world.store.list('Node', { namespace: world.namespace })).items;
  const conditionTrue = (node: Node, type: string) =>
    node.status?.conditions?.find((condition) => condition.type === type)?.status === 'True';
  const candidates = nodes
    .filter((node) => world.hasInstanceManager(node.metadata.name))
    .map((node) => ({
      name: node.metadata.name,
      ready: conditionTrue(node, 'Ready'),
      // The share manager attaches the volume's block device on its node (iscsiadm, mkfs):
      // a node whose CSI plugin reported RequiredPackages False cannot take it.
      schedulable: conditionTrue(node, 'Schedulable') && nodeCanServe(node, 'block').serves,
    }));
  return { nodes, candidates };
}

export function nodeReadyOf(nodes: Node[], name: string): 'True' | 'Unknown' | 'False' {
  const node = nodes.find((entry) => entry.metadata.name === name);
  const status = node?.status?.conditions?.find((condition) => condition.type === 'Ready')?.status;
  return status === 'True' || status === 'False' ? status : node === undefined ? 'False' : 'Unknown';
}

export async function replicaNodes(world: ShareManagerWorld, volume: string): Promise<Set<string>> {
  const replicas = (await world.store.list('Replica', { namespace: world.namespace })).items;
  return new Set(
    replicas
      .filter(
        (replica) =>
          replica.spec.volumeName === volume &&
          replica.spec.nodeID !== '' &&
          replica.spec.failedAt === undefined,
      )
      .map((replica) => replica.spec.nodeID),
  );
}

export function previousNodes(shareManager: ShareManager): string[] {
  const text = shareManager.metadata.annotations?.[PREVIOUS_NODES_ANNOTATION] ?? '';
  return text === '' ? [] : text.split(',');
}

/**
 * Deletes the share manager left on nodes it moved away from (process or Pod), once they
 * answer; the ShareManager as it is now (updated when a node was cleaned).
 */
export async function cleanPreviousNodes(
  world: ShareManagerWorld,
  shareManager: ShareManager,
): Promise<ShareManager> {
  const previous = previousNodes(shareManager);
  if (previous.length === 0) return shareManager;
  const left: string[] = [];
  for (const node of previous) {
    try {
      await world.hosting.stop(shareManager.metadata.name, node, {
        removeData: false,
        deadlineMs: PROBE_DEADLINE_MS,
        fenced: true,
      });
    } catch {
      left.push(node);
    }
  }
  if (left.length === previous.length) return shareManager;
  const fresh = await world.store.get({
    kind: 'ShareManager',
    namespace: world.namespace,
    name: shareManager.metadata.name,
  });
  return world.store.update({
    ...fresh,
    metadata: {
      ...fresh.metadata,
      annotations: { ...fresh.metadata.annotations, [PREVIOUS_NODES_ANNOTATION]: left.join(',') },
    },
  });
}

/** The ticket `share-manager-<volume>` on the volume's VolumeAttachment names `nodeID`. */
export async function ensureTicket(world: ShareManagerWorld, volume: string, nodeID: string): Promise<void> {
  const attachment = await getOrUndefined(world.store, 'VolumeAttachment', world.namespace, volume);
  if (attachment === undefined)
    throw new HornbillError('RESOURCE_NOT_FOUND', `volume ${volume} has no VolumeAttachment yet`);
  const id = ticketId(volume);
  const ticket = attachment.spec.attachmentTickets[id];
  if (ticket?.nodeID === nodeID) return;
  await world.store.update({
    ...attachment,
    spec: {
      ...attachment.spec,
      attachmentTickets: {
        ...attachment.spec.attachmentTickets,
        [id]: {
          id,
          type: 'share-manager',
          nodeID,
          parameters: {},
          generation: (ticket?.generation ?? 0) + 1,
        },
      },
    },
  });
}

export async function removeTicket(world: ShareManagerWorld, volume: string): Promise<void> {
  const attachment: VolumeAttachment | undefined = await getOrUndefined(
    world.store,
    'VolumeAttachment',
    world.namespace,
    volume,
  );
  const id = ticketId(volume);
  if (attachment === undefined || attachment.spec.attachmentTickets[id] === undefined) return;
  const { [id]: _removed, ...rest } = attachment.spec.attachmentTickets;
  await world.store.update({ ...attachment, spec: { ...attachment.spec, attachmentTickets: rest } });
}
