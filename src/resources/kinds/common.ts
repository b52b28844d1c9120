/** What every kind's definition has, and schema pieces the kinds share. */
import { DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN } from '../names.ts';
import { BYTE_QUANTITY_PATTERN } from '../quantity.ts';
import { type FieldError, type JsonSchema, type ObjectSchema, Schema } from '../schema.ts';

/** A column of `kubectl get` (a CRD's additionalPrinterColumns). */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 0: always shown; 1: only with `-o wide`. */
  priority?: 0 | 1;
}

/** What a kind-specific rule sees: an object whose spec (and status, if any) passed the schema. */
export interface CheckedObject {
  metadata: { name: string; namespace: string };
  spec: unknown;
  status?: unknown;
}

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  /** Names of this kind: a DNS-1123 label (63) or subdomain (253). */
  nameRule: 'dns-label' | 'dns-subdomain';
  spec: ObjectSchema;
  status: ObjectSchema;
  printerColumns: PrinterColumn[];
  /** Rules the schema cannot say (cross-field checks, value ranges of quantities). */
  validate?(object: CheckedObject): FieldError[];
  /** Rules about a change (immutable fields, no shrinking). */
  validateUpdate?(previous: CheckedObject, next: CheckedObject): FieldError[];
}

export const AGE_COLUMN: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
};

export const conditionSchema = Schema.object(
  {
    type: Schema.string({ minLength: 1, maxLength: 316, description: 'UpperCamelCase condition type.' }),
    status: Schema.enumeration(['True', 'False', 'Unknown']),
    reason: Schema.string({ maxLength: 1024, description: 'UpperCamelCase, machine-readable.' }),
    message: Schema.string({ maxLength: 32768 }),
    lastTransitionTime: Schema.timestamp('When status last changed.'),
    observedGeneration: Schema.integer({ minimum: 0 }),
  },
  { required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'] },
);

/** observedGeneration and conditions: the start of every status. */
export const statusBaseProperties: Record<string, JsonSchema> = {
  observedGeneration: Schema.integer({ minimum: 0, description: 'The metadata.generation last acted on.' }),
  conditions: Schema.array(conditionSchema, { maxItems: 32 }),
};

export const volumeNameSchema = (description: string) =>
  Schema.string({ pattern: DNS_LABEL_PATTERN, maxLength: 63, description });
export const objectNameSchema = (description: string) =>
  Schema.string({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, description });
/** A node name, or '' for none. */
export const optionalNodeSchema = (description: string) =>
  Schema.string({ pattern: `^$|${DNS_SUBDOMAIN_PATTERN}`, maxLength: 253, default: '', description });
export const byteQuantitySchema = (description: string, defaultValue?: string) =>
  Schema.string({ pattern: BYTE_QUANTITY_PATTERN, maxLength: 32, description, default: defaultValue });
export const bytesSchema = (description: string) =>
  Schema.integer({ minimum: 0, format: 'int64', description });
export const portSchema = Schema.integer({ minimum: 0, maximum: 65535 });
export const ipSchema = Schema.string({ maxLength: 64, pattern: '^[0-9A-Fa-f.:]*$' });
/** host:port, for replica and engine addresses. */
export const addressSchema = Schema.string({
  maxLength: 300,
  pattern: '^[A-Za-z0-9.\\-]+:[0-9]{1,5}$|^\\[[0-9A-Fa-f:]+\\]:[0-9]{1,5}$',
});
export const absolutePathSchema = (description: string) =>
  Schema.string({ pattern: '^/', maxLength: 4096, description });
/** Node and disk tags, matched by volumes' nodeSelector and diskSelector. */
export const tagListSchema = (description: string) =>
  Schema.array(Schema.string({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' }), {
    maxItems: 64,
    'x-kubernetes-list-type': 'set',
    default: [],
    description,
  });
export const labelMapSchema = (description: string) =>
  Schema.map(Schema.string({ maxLength: 1024 }), { maxProperties: 64, default: {}, description });
export const desireStateSchema = Schema.enumeration(['running', 'stopped'], {
  default: 'stopped',
  description: 'What the controller should make of the process.',
});
export const INSTANCE_STATES = ['running', 'stopped', 'error', 'starting', 'stopping', 'unknown'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** A field error list with one entry when `condition` fails. */
export function check(condition: boolean, field: string, reason: string): FieldError[] {
  return condition ? [] : [{ field, reason }];
}

/** A FieldError for an immutable field that changed. */
export function immutable(previous: unknown, next: unknown, field: string): FieldError[] {
  return check(previous === next, field, `is immutable (was ${JSON.stringify(previous)})`);
}
