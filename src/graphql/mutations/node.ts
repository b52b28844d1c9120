/**
 * Node, disk and setting mutations; they need a token with scope `admin`. A node's disks
 * live in its spec.disks, so adding, changing and removing a disk is a read-modify-write
 * of the Node (retried on conflict). A disk can be removed only once scheduling on it is
 * off and no replica is placed on it (as in Longhorn).
 */

import { isHornbillError } from '../../errors.ts';
import {
  type DiskSpecInput,
  isSettingName,
  type Node,
  retryOnConflict,
  SETTINGS,
  type Setting,
} from '../../resources/index.ts';
import { builder, NodeRef, SettingRef } from '../builder.ts';
import { type GraphQLContext, requireScope } from '../context.ts';
import { argumentError, argumentField, checkName, payloadType, runMutation } from './payload.ts';

export const NodePayloadRef = payloadType<Node>(
  'NodePayload',
  'node',
  NodeRef,
  'The node as written, or why not.',
);
export const SettingPayloadRef = payloadType<{ name: string; definition: unknown; resource?: Setting }>(
  'SettingPayload',
  'setting',
  SettingRef,
  'The setting as written, or why not.',
);

const DISK_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function updateNodeSpec(
  context: GraphQLContext,
  name: string,
  change: (node: Node) => Node['spec'],
): Promise<Node> {
  return retryOnConflict(async () => {
    const node = await context.store.get({ kind: 'Node', namespace: context.namespace, name });
    return context.store.update({ ...node, spec: change(node) });
  });
}

async function requireNode(context: GraphQLContext, name: string, field = 'node'): Promise<Node> {
  checkName('Node', name, field);
  const node = await context.loader.get('Node', name);
  if (node === undefined) throw argumentError('RESOURCE_NOT_FOUND', `node ${name} does not exist`, field);
  return node;
}

function checkDiskName(name: string): void {
  if (name.length > 63 || !DISK_NAME.test(name)) {
    throw argumentError('INVALID_ARGUMENT', 'disk names must be DNS-1123 labels', 'name');
  }
}

/** Maps `spec.disks[d].path` to `path`, `spec.tags[0]` to `tags[0]`. */
function diskField(disk: string) {
  return (field: unknown) => argumentField(field, '', `spec.disks[${disk}].`);
}

builder.mutationFields((t) => ({
  updateNode: t.field({
    type: NodePayloadRef,
    description: 'Changes scheduling, tags or eviction of a node (scope admin).',
    args: {
      name: t.arg.string({ required: true }),
      allowScheduling: t.arg.boolean(),
      evictionRequested: t.arg.boolean(),
      tags: t.arg.stringList(),
    },
    resolve: (_root, args, context) => {
      requireScope(context, 'admin');
      return runMutation(context, 'updateNode', async () => {
        await requireNode(context, args.name, 'name');
        return updateNodeSpec(context, args.name, (node) => ({
          ...node.spec,
          ...(args.allowScheduling == null ? {} : { allowScheduling: args.allowScheduling }),
          ...(args.evictionRequested == null ? {} : { evictionRequested: args.evictionRequested }),
          ...(args.tags == null ? {} : { tags: args.tags }),
        }));
      });
    },
  }),
  addDisk: t.field({
    type: NodePayloadRef,
    description: 'Adds a disk (a folder that will hold replica folders) to a node (scope admin).',
    args: {
      node: t.arg.string({ required: true }),
      name: t.arg.string({ required: true }),
      path: t.arg.string({ required: true }),
      allowScheduling: t.arg.boolean(),
      storageReserved: t.arg.string({ description: 'A quantity kept free for other uses.' }),
      tags: t.arg.stringList(),
    },
    resolve: (_root, args, context) => {
      requireScope(context, 'admin');
      return runMutation(
        context,
        'addDisk',
        async () => {
          await requireNode(context, args.node);
          checkDiskName(args.name);
          return updateNodeSpec(context, args.node, (node) => {
            if (Object.hasOwn(node.spec.disks, args.name)) {
              throw argumentError(
                'RESOURCE_ALREADY_EXISTS',
                `node ${args.node} already has a disk ${args.name}`,
                'name',
              );
            }
            const disk: DiskSpecInput = { path: args.path };
            if (args.allowScheduling != null) disk.allowScheduling = args.allowScheduling;
            if (args.storageReserved != null) disk.storageReserved = args.storageReserved;
            if (args.tags != null) disk.tags = args.tags;
            return {
              ...node.spec,
              disks: { ...node.spec.disks, [args.name]: disk as Node['spec']['disks'][string] },
            };
          });
        },
        diskField(args.name),
      );
    },
  }),
  updateDisk: t.field({
    type: NodePayloadRef,
    description: 'Changes scheduling, eviction, reserved space or tags of a disk (scope admin).',
    args: {
      node: t.arg.string({ required: true }),
      name: t.arg.string({ required: true }),
      allowScheduling: t.arg.boolean(),
      evictionRequested: t.arg.boolean(),
      storageReserved: t.arg.string(),
      tags: t.arg.stringList(),
    },
    resolve: (_root, args, context) => {
      requireScope(context, 'admin');
      return runMutation(
        context,
        'updateDisk',
        async () => {
          await requireNode(context, args.node);
          return updateNodeSpec(context, args.node, (node) => {
            const disk = node.spec.disks[args.name];
            if (!Object.hasOwn(node.spec.disks, args.name) || disk === undefined) {
              throw argumentError('RESOURCE_NOT_FOUND', `node ${args.node} has no disk ${args.name}`, 'name');
            }
            const changed = {
              ...disk,
              ...(args.allowScheduling == null ? {} : { allowScheduling: args.allowScheduling }),
              ...(args.evictionRequested == null ? {} : { evictionRequested: args.evictionRequested }),
              ...(args.storageReserved == null ? {} : { storageReserved: args.storageReserved }),
              ...(args.tags == null ? {} : { tags: args.tags }),
            };
            return { ...node.spec, disks: { ...node.spec.disks, [args.name]: changed } };
          });
        },
        diskField(args.name),
      );
    },
  }),
  removeDisk: t.field({
    type: NodePayloadRef,
    description: 'Removes a disk whose scheduling is off and that holds no replica (scope admin).',
    args: { node: t.arg.string({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => {
      requireScope(context, 'admin');
      return runMutation(context, 'removeDisk', async () => {
        await requireNode(context, args.node);
        const replicas = (await context.loader.list('Replica')).filter(
          (replica) => replica.spec.nodeID === args.node && replica.spec.diskID === args.name,
        );
        return updateNodeSpec(context, args.node, (node) => {
          const disk = node.spec.disks[args.name];
          if (!Object.hasOwn(node.spec.disks, args.name) || disk === undefined) {
            throw argumentError('RESOURCE_NOT_FOUND', `node ${args.node} has no disk ${args.name}`, 'name');
          }
          if (disk.allowScheduling) {
            throw argumentError(
              'GRAPHQL_PRECONDITION_FAILED',
              `disk ${args.name} still allows scheduling: updateDisk with allowScheduling false first`,
              'name',
            );
          }
          const scheduled = Object.keys(node.status?.diskStatus?.[args.name]?.scheduledReplica ?? {});
          const held = [...new Set([...scheduled, ...replicas.map((replica) => replica.metadata.name)])];
          if (held.length > 0) {
            throw argumentError(
              'GRAPHQL_PRECONDITION_FAILED',
              `disk ${args.name} still holds replica(s) ${held.slice(0, 5).join(', ')}: evict them first`,
              'name',
            );
          }
          const disks = { ...node.spec.disks };
          delete disks[args.name];
          return { ...node.spec, disks };
        });
      });
    },
  }),
  updateSetting: t.field({
    type: SettingPayloadRef,
    description:
      'Sets a cluster-wide setting (scope admin); the value is text, checked against its type and range.',
    args: { name: t.arg.string({ required: true }), value: t.arg.string({ required: true }) },
    resolve: (_root, { name, value }, context) => {
      requireScope(context, 'admin');
      return runMutation(
        context,
        'updateSetting',
        async () => {
          if (!isSettingName(name)) {
            const shown = name.length > 64 ? `${JSON.stringify(name.slice(0, 64))}...` : JSON.stringify(name);
            throw argumentError('INVALID_ARGUMENT', `${shown} is not a known setting`, 'name');
          }
          const key = { kind: 'Setting' as const, namespace: context.namespace, name };
          const resource = await retryOnConflict(async () => {
            const existing = await context.store.get(key).catch((error) => {
              if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
              throw error;
            });
            if (existing === undefined) {
              return context.store
                .create({
                  kind: 'Setting',
                  metadata: { name, namespace: context.namespace },
                  spec: { value },
                })
                .catch((error) => {
                  // Created meanwhile by someone else: read again and update.
                  if (isHornbillError(error, 'RESOURCE_ALREADY_EXISTS')) {
                    throw argumentError('RESOURCE_CONFLICT', 'created concurrently');
                  }
                  throw error;
                });
            }
            return context.store.update({ ...existing, spec: { value } });
          });
          return { name, definition: SETTINGS[name], resource };
        },
        (field) => (field === 'spec.value' ? 'value' : argumentField(field)),
      );
    },
  }),
}));
