/**
 * The ShareManager's status (state, nodeID, endpoint; conditions Ready and DataSource) and
 * the Volume's share fields (status.shareEndpoint while running, status.shareState), written
 * only when they change; an Event on every change of state.
 */
import type { ShareManager, ShareManagerStatus, Volume } from '../../resources/index.ts';
import { getOrUndefined, sameJson, withCondition } from '../context.ts';
import type { ShareManagerWorld } from './world.ts';

export async function writeStatus(
  world: ShareManagerWorld,
  shareManager: ShareManager,
  volume: Volume,
  next: {
    state: NonNullable<ShareManagerStatus['state']>;
    nodeID: string;
    endpoint?: string;
    /** Its node does not answer: whether it serves is not known. */
    readyUnknown?: boolean;
  },
  problem?: string,
  dataSource?: { status: 'True' | 'False'; reason: string; message: string },
): Promise<void> {
  const previous = shareManager.status ?? {};
  const status: ShareManagerStatus = {
    ...previous,
    state: next.state,
    nodeID: next.nodeID,
    endpoint: next.endpoint ?? (next.state === 'running' ? previous.endpoint : ''),
    observedGeneration: shareManager.metadata.generation,
  };
  let conditions = previous.conditions;
  const ready = next.readyUnknown
    ? { status: 'Unknown' as const, reason: 'NodeUnreachable' }
    : next.state === 'running'
      ? { status: 'True' as const, reason: 'Serving' }
      : { status: 'False' as const, reason: next.state === 'error' ? 'Failed' : 'Starting' };
  conditions = withCondition(conditions, {
    type: 'Ready',
    ...ready,
    message:
      problem ?? (next.state === 'running' ? `serving ${status.endpoint} from node ${next.nodeID}` : ''),
  }).conditions;
  if (dataSource !== undefined)
    conditions = withCondition(conditions, { type: 'DataSource', ...dataSource }).conditions;
  status.conditions = conditions;
  if (!sameJson(status, shareManager.status)) {
    await world.store.updateStatus({ ...shareManager, status });
    if (previous.state !== status.state)
      await world.event(
        shareManager,
        next.state === 'error' ? 'Warning' : 'Normal',
        capitalize(next.state),
        problem ?? `${next.state} on node ${next.nodeID}`,
      );
  }
  await writeVolumeShareStatus(world, volume, status);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Volume status.shareEndpoint (while running) and shareState; both cleared when undefined. */
export async function writeVolumeShareStatus(
  world: ShareManagerWorld,
  volume: Volume,
  status: ShareManagerStatus | undefined,
): Promise<void> {
  const fresh = await getOrUndefined(world.store, 'Volume', world.namespace, volume.metadata.name);
  if (fresh === undefined || fresh.metadata.deletionTimestamp !== undefined) return;
  const next = { ...fresh.status };
  if (status === undefined) {
    delete next.shareEndpoint;
    delete next.shareState;
  } else {
    next.shareState = status.state;
    if (status.state === 'running' && status.endpoint) next.shareEndpoint = status.endpoint;
    else delete next.shareEndpoint;
  }
  if (sameJson(next, fresh.status ?? {})) return;
  await world.store.updateStatus({ ...fresh, status: next });
}
