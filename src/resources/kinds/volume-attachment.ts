/**
 * VolumeAttachment: the attachment tickets of one volume. Everything that needs a volume
 * attached (the CSI attacher, the API, a share manager, salvage, snapshot, backup, rebuild)
 * adds a ticket naming a node; the ticket with the highest priority decides where the
 * volume is attached, and tickets for that node are satisfied together.
 */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { DNS_SUBDOMAIN_PATTERN } from '../names.ts';
import { type FieldError, Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  conditionSchema,
  immutable,
  type KindDefinition,
  statusBaseProperties,
  volumeNameSchema,
} from './common.ts';

export const ATTACHMENT_TICKET_TYPES = [
  'csi-attacher',
  'api',
  'share-manager',
  'salvage',
  'snapshot',
  'backup',
  'rebuild',
  'clone',
] as const;
export type AttachmentTicketType = (typeof ATTACHMENT_TICKET_TYPES)[number];

/** Higher wins (Longhorn's attacher priority levels). */
export const ATTACHMENT_TICKET_PRIORITY: Record<AttachmentTicketType, number> = {
  api: 1000,
  'csi-attacher': 900,
  'share-manager': 900,
  salvage: 900,
  snapshot: 800,
  backup: 800,
  rebuild: 800,
  clone: 800,
};

export interface AttachmentTicket {
  id: string;
  type: AttachmentTicketType;
  nodeID: string;
  /** For example disableFrontend: "true". */
  parameters: Record<string, string>;
  /** Bumped by the ticket's owner on every change, echoed in its status. */
  generation: number;
}

export interface VolumeAttachmentSpec {
  volume: string;
  /** Ticket id → ticket. */
  attachmentTickets: Record<string, AttachmentTicket>;
}

export type VolumeAttachmentSpecInput = WithOptional<VolumeAttachmentSpec, 'attachmentTickets'>;

export interface AttachmentTicketStatus {
  id: string;
  satisfied: boolean;
  conditions?: StatusBase['conditions'];
  generation?: number;
}

export interface VolumeAttachmentStatus extends StatusBase {
  attachmentTicketStatuses?: Record<string, AttachmentTicketStatus>;
}

export type VolumeAttachment = Resource<'VolumeAttachment', VolumeAttachmentSpec, VolumeAttachmentStatus>;

const TICKET_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$';

/**
 * The ticket that decides where the volume is attached: highest priority first, then the
 * smallest id (Longhorn's tie-break), so every controller picks the same one.
 */
export function selectAttachmentTicket(
  tickets: Record<string, AttachmentTicket>,
): AttachmentTicket | undefined {
  let best: AttachmentTicket | undefined;
  for (const ticket of Object.values(tickets)) {
    if (best === undefined) {
      best = ticket;
      continue;
    }
    const difference = ATTACHMENT_TICKET_PRIORITY[ticket.type] - ATTACHMENT_TICKET_PRIORITY[best.type];
    if (difference > 0 || (difference === 0 && ticket.id < best.id)) best = ticket;
  }
  return best;
}

export const volumeAttachmentDefinition: KindDefinition = {
  kind: 'VolumeAttachment',
  plural: 'volumeattachments',
  singular: 'volumeattachment',
  shortNames: ['hbva'],
  description: 'The attachment tickets of one volume.',
  nameRule: 'dns-subdomain',
  spec: Schema.object(
    {
      volume: volumeNameSchema('The volume the tickets are for.'),
      attachmentTickets: Schema.map(
        Schema.object(
          {
            id: Schema.string({ pattern: TICKET_ID_PATTERN }),
            type: Schema.enumeration(ATTACHMENT_TICKET_TYPES),
            nodeID: Schema.string({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 }),
            parameters: Schema.map(Schema.string({ maxLength: 1024 }), { maxProperties: 32, default: {} }),
            generation: Schema.integer({ minimum: 0, default: 0 }),
          },
          { required: ['id', 'type', 'nodeID'] },
        ),
        { maxProperties: 256, default: {} },
      ),
    },
    { required: ['volume'] },
  ),
  status: Schema.object({
    ...statusBaseProperties,
    attachmentTicketStatuses: Schema.map(
      Schema.object(
        {
          id: Schema.string(),
          satisfied: Schema.boolean(),
          conditions: Schema.array(conditionSchema, { maxItems: 32 }),
          generation: Schema.integer({ minimum: 0 }),
        },
        { required: ['id', 'satisfied'] },
      ),
    ),
  }),
  printerColumns: [{ name: 'Volume', type: 'string', jsonPath: '.spec.volume' }, AGE_COLUMN],
  validate(object) {
    const spec = object.spec as VolumeAttachmentSpec;
    const errors: FieldError[] = [];
    for (const [key, ticket] of Object.entries(spec.attachmentTickets)) {
      if (ticket.id !== key) {
        errors.push({
          field: `spec.attachmentTickets[${key}].id`,
          reason: `must equal its key ${JSON.stringify(key)}`,
        });
      }
    }
    return errors;
  },
  validateUpdate(previous, next) {
    return immutable(
      (previous.spec as VolumeAttachmentSpec).volume,
      (next.spec as VolumeAttachmentSpec).volume,
      'spec.volume',
    );
  },
};
