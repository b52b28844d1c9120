/**
 * The Pothos schema builder and what every part of the schema shares: the `Bytes` scalar,
 * enums made from Hornbill's string unions, and the object references of every type (so
 * that the files in types/ and mutations/ can point at each other without import cycles).
 *
 * GraphQL's Int is 32-bit and volumes reach 16 TiB, so byte counts are the `Bytes` scalar,
 * written as a decimal string ("17592186040320"). Sizes as the user wrote them (`2Gi`)
 * are plain strings.
 */
import SchemaBuilder from '@pothos/core';
import { GraphQLError, Kind as GraphQLKind } from 'graphql';
import type {
  Backup,
  BackupTarget,
  Condition,
  Engine,
  InstanceManager,
  Node,
  Replica,
  ResourceEvent,
  SettingDefinition,
  Setting as SettingResource,
  Volume,
} from '../resources/index.ts';
import type { GraphQLContext } from './context.ts';
import type { DiskView, SnapshotView } from './views.ts';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: { Bytes: { Input: number; Output: number | bigint | string } };
  DefaultFieldNullability: false;
}>({ defaultFieldNullability: false });

const SAFE_DIGITS = /^\d{1,16}$/;

function parseBytes(value: unknown): number {
  const number = typeof value === 'string' && SAFE_DIGITS.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0) {
    throw new GraphQLError('Bytes must be a non-negative integer below 2^53, as a decimal string', {
      extensions: { code: 'INVALID_ARGUMENT' },
    });
  }
  return number;
}

builder.scalarType('Bytes', {
  description:
    'A count of bytes as a decimal string (sizes reach 16 TiB, beyond the 32-bit GraphQL Int). ' +
    'Accepted as a decimal string or an integer.',
  serialize: (value) => String(value),
  parseValue: parseBytes,
  parseLiteral: (node) => {
    if (node.kind === GraphQLKind.STRING || node.kind === GraphQLKind.INT) return parseBytes(node.value);
    throw new GraphQLError('Bytes must be a decimal string or an integer', {
      extensions: { code: 'INVALID_ARGUMENT' },
    });
  },
});

/** `best-effort` → `BEST_EFFORT`: GraphQL enum names cannot hold hyphens. */
export function enumValueName(value: string): string {
  return value.replaceAll('-', '_').toUpperCase();
}

/** A GraphQL enum whose values are Hornbill's strings (`strict-local` is `STRICT_LOCAL`). */
export function stringEnum<const T extends readonly string[]>(name: string, values: T, description: string) {
  const entries = Object.fromEntries(values.map((value) => [enumValueName(value), { value }]));
  return builder.enumType(name, {
    description,
    values: entries as Record<string, { value: T[number] }>,
  });
}

// Object references, implemented in types/*.ts.
export const VolumeRef = builder.objectRef<Volume>('Volume');
export const EngineRef = builder.objectRef<Engine>('Engine');
export const ReplicaRef = builder.objectRef<Replica>('Replica');
export const SnapshotRef = builder.objectRef<SnapshotView>('Snapshot');
export const NodeRef = builder.objectRef<Node>('Node');
export const DiskRef = builder.objectRef<DiskView>('Disk');
export const SettingRef = builder.objectRef<{
  name: string;
  definition: SettingDefinition;
  resource?: SettingResource;
}>('Setting');
export const EventRef = builder.objectRef<ResourceEvent>('Event');
export const InstanceManagerRef = builder.objectRef<InstanceManager>('InstanceManager');
export const BackupRef = builder.objectRef<Backup>('Backup');
export const BackupTargetRef = builder.objectRef<BackupTarget>('BackupTarget');

export const LabelRef = builder.objectRef<{ key: string; value: string }>('Label').implement({
  description: 'One entry of a string map (labels, tags with values, parameters).',
  fields: (t) => ({ key: t.exposeString('key'), value: t.exposeString('value') }),
});

/** A string map as a list of Label, sorted by key. */
export function labelsOf(map: Record<string, string> | undefined): { key: string; value: string }[] {
  return Object.entries(map ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value }));
}

export const ConditionRef = builder.objectRef<Condition>('Condition').implement({
  description: 'One observation a controller made about an object, and why.',
  fields: (t) => ({
    type: t.exposeString('type', { description: 'Ready, Scheduled, Schedulable, ...' }),
    status: t.exposeString('status', { description: 'True, False or Unknown.' }),
    reason: t.exposeString('reason'),
    message: t.exposeString('message'),
    lastTransitionTime: t.exposeString('lastTransitionTime'),
  }),
});

export const UserErrorRef = builder
  .objectRef<{ code: string; message: string; field?: string }>('UserError')
  .implement({
    description:
      'Why a mutation did not happen. `code` is a Hornbill error code (docs/errors.md), `field` the argument at fault.',
    fields: (t) => ({
      code: t.exposeString('code'),
      message: t.exposeString('message'),
      field: t.exposeString('field', { nullable: true }),
    }),
  });

export type HornbillSchemaTypes =
  typeof builder extends PothosSchemaTypes.SchemaBuilder<infer Types> ? Types : never;

/** Shared object metadata fields. */
export function metadataFields<T extends { metadata: Volume['metadata'] }>(
  t: PothosSchemaTypes.ObjectFieldBuilder<HornbillSchemaTypes, T>,
) {
  return {
    name: t.string({ resolve: (object) => object.metadata.name }),
    uid: t.string({ resolve: (object) => object.metadata.uid }),
    resourceVersion: t.string({ resolve: (object) => object.metadata.resourceVersion }),
    creationTimestamp: t.string({ resolve: (object) => object.metadata.creationTimestamp }),
    deletionTimestamp: t.string({ nullable: true, resolve: (object) => object.metadata.deletionTimestamp }),
    labels: t.field({ type: [LabelRef], resolve: (object) => labelsOf(object.metadata.labels) }),
  };
}
