/**
 * Attachment tickets that controllers hold on a volume's VolumeAttachment while they need its
 * engine running (a clone's copy, a snapshot of a detached volume): added or moved with
 * `ensureTicket`, dropped with `removeTicket`; both wake the volume's controller. The volume
 * controller decides where the volume goes from all tickets (selectAttachmentTicket).
 *
 * ```ts
 * await ensureTicket(context, 'vol', 'snapshot-s1', 'snapshot', 'node-1');
 * // … the engine runs, the work is done …
 * await removeTicket(context, 'vol', 'snapshot-s1');
 * ```
 */
import type { AttachmentTicket, AttachmentTicketType, VolumeAttachment } from '../resources/index.ts';
import { type ControllerContext, getOrUndefined, names } from './context.ts';
import { nodeReadiness } from './node-controller.ts';

/** Adds (or moves) a ticket that attaches the volume on `nodeID` without frontend. */
export async function ensureTicket(
  context: ControllerContext,
  volume: string,
  id: string,
  type: AttachmentTicketType,
  nodeID: string,
): Promise<void> {
  const attachment = await getOrUndefined(
    context.store,
    'VolumeAttachment',
    context.namespace,
    names.volumeAttachment(volume),
  );
  if (attachment === undefined) return;
  const existing = attachment.spec.attachmentTickets[id];
  if (existing?.nodeID === nodeID && existing.type === type) return;
  const ticket: AttachmentTicket = {
    id,
    type,
    nodeID,
    parameters: { disableFrontend: 'true' },
    generation: (existing?.generation ?? 0) + 1,
  };
  await context.store.update({
    ...attachment,
    spec: { ...attachment.spec, attachmentTickets: { ...attachment.spec.attachmentTickets, [id]: ticket } },
  });
  context.enqueue('volume', volume);
}

export async function removeTicket(context: ControllerContext, volume: string, id: string): Promise<void> {
  const attachment: VolumeAttachment | undefined = await getOrUndefined(
    context.store,
    'VolumeAttachment',
    context.namespace,
    names.volumeAttachment(volume),
  );
  if (attachment?.spec.attachmentTickets[id] === undefined) return;
  const { [id]: _removed, ...rest } = attachment.spec.attachmentTickets;
  await context.store.update({ ...attachment, spec: { ...attachment.spec, attachmentTickets: rest } });
  context.enqueue('volume', volume);
}

/** The nodes whose instance manager answers now (where an engine can start). */
export async function readyNodes(context: ControllerContext): Promise<Set<string>> {
  const settings = await context.settings();
  const ready = new Set<string>();
  for (const monitor of context.monitors.all())
    if (nodeReadiness(monitor, settings) === 'ready') ready.add(monitor.endpoint.nodeID);
  return ready;
}
