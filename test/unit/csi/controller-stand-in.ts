/**
 * The test playing the controllers' part. Unit tests of the CSI driver run against an
 * embedded store with no volume or snapshot controller, so this loop does — crudely — what
 * src/controllers/ do, through the same store: a new Volume becomes detached and healthy;
 * the winning attachment ticket makes it attached on that node with an iSCSI endpoint (or
 * detached when there is none); a Snapshot becomes ready to use. It never touches what the
 * CSI driver writes (specs, tickets): only statuses, as the controllers would.
 */
import { selectAttachmentTicket } from '../../../src/resources/kinds/volume-attachment.ts';
import { parseByteQuantity } from '../../../src/resources/quantity.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';

export const STAND_IN_PORTAL = '10.0.0.11:3260';

export function endpointFor(volume: string): string {
  return `iscsi://${STAND_IN_PORTAL}/iqn.2026-11.io.hornbill:${volume}/0`;
}

export interface StandInOptions {
  /** Milliseconds before an attach completes (default 0: the next round). */
  attachDelayMs?: number;
  /** Volumes that stay attaching forever (to provoke DEADLINE_EXCEEDED). */
  stuck?: Set<string>;
}

/** Runs until the signal aborts; each round every 25 ms. */
export async function playControllers(
  store: ResourceStore,
  namespace: string,
  signal: AbortSignal,
  options: StandInOptions = {},
): Promise<void> {
  const attachingSince = new Map<string, number>();
  while (!signal.aborted) {
    try {
      await round(store, namespace, attachingSince, options);
    } catch {
      // A conflict with the driver's own write: the next round sees the new state.
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function round(
  store: ResourceStore,
  namespace: string,
  attachingSince: Map<string, number>,
  options: StandInOptions,
): Promise<void> {
  const volumes = (await store.list('Volume', { namespace })).items;
  const attachments = new Map(
    (await store.list('VolumeAttachment', { namespace })).items.map((item) => [item.spec.volume, item]),
  );
  for (const volume of volumes) {
    const name = volume.metadata.name;
    const status = volume.status ?? {};
    if (status.state === undefined) {
      await store.updateStatus({
        ...volume,
        status: { ...status, state: 'detached', robustness: 'healthy' },
      });
      continue;
    }
    const attachment = attachments.get(name);
    const ticket = selectAttachmentTicket(attachment?.spec.attachmentTickets ?? {});
    if (ticket !== undefined && (status.state !== 'attached' || status.currentNodeID !== ticket.nodeID)) {
      const since = attachingSince.get(name) ?? Date.now();
      attachingSince.set(name, since);
      if (options.stuck?.has(name) || Date.now() - since < (options.attachDelayMs ?? 0)) {
        if (status.state !== 'attaching')
          await store.updateStatus({ ...volume, status: { ...status, state: 'attaching' } });
        continue;
      }
      attachingSince.delete(name);
      await store.updateStatus({
        ...volume,
        status: { ...status, state: 'attached', currentNodeID: ticket.nodeID, endpoint: endpointFor(name) },
      });
    } else if (ticket === undefined && status.state !== 'detached') {
      const { currentNodeID: _node, endpoint: _endpoint, ...rest } = status;
      await store.updateStatus({ ...volume, status: { ...rest, state: 'detached' } });
    }
    if (attachment !== undefined) {
      const statuses: Record<string, { id: string; satisfied: boolean }> = {};
      for (const each of Object.values(attachment.spec.attachmentTickets))
        statuses[each.id] = {
          id: each.id,
          satisfied: status.state === 'attached' && status.currentNodeID === each.nodeID,
        };
      if (JSON.stringify(statuses) !== JSON.stringify(attachment.status?.attachmentTicketStatuses ?? {}))
        await store.updateStatus({
          ...attachment,
          status: { ...attachment.status, attachmentTicketStatuses: statuses },
        });
    }
  }
  for (const snapshot of (await store.list('Snapshot', { namespace })).items) {
    if (snapshot.status?.readyToUse === true) continue;
    const volume = volumes.find((candidate) => candidate.metadata.name === snapshot.spec.volume);
    await store.updateStatus({
      ...snapshot,
      status: {
        ...snapshot.status,
        readyToUse: true,
        creationTime: new Date().toISOString(),
        restoreSize: parseByteQuantity(volume?.spec.size ?? '0') ?? 0,
        size: 4096,
      },
    });
  }
}
