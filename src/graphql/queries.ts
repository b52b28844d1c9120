/**
 * The Query root: volumes (filtered, paginated by name), one volume with its engine,
 * replicas and snapshots, nodes and disks, settings (every known setting, with defaults),
 * events (newest first), instance managers, backups and backup targets.
 *
 * Pagination: `volumes(first, after)` pages through volumes sorted by name; `after` is the
 * `endCursor` of the previous page (an opaque string).
 */
import { HornbillError } from '../errors.ts';
import { isSettingName, SETTING_NAMES, SETTINGS, type Volume } from '../resources/index.ts';
import {
  BackupRef,
  BackupTargetRef,
  builder,
  EventRef,
  InstanceManagerRef,
  NodeRef,
  ReplicaRef,
  SettingRef,
  SnapshotRef,
  VolumeRef,
} from './builder.ts';
import type { GraphQLContext } from './context.ts';
import { checkedFirst } from './limits.ts';
import { checkName } from './mutations/payload.ts';
import { engineOfVolume, VolumeRobustnessEnum, VolumeStateEnum } from './types/volume.ts';
import { snapshotViews } from './views.ts';

const DEFAULT_VOLUME_PAGE = 100;
const DEFAULT_EVENT_PAGE = 100;

interface VolumePage {
  nodes: Volume[];
  totalCount: number;
  hasNextPage: boolean;
  endCursor: string | null;
}

const PageInfoRef = builder.objectRef<VolumePage>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    endCursor: t.exposeString('endCursor', {
      nullable: true,
      description: 'Pass as `after` for the next page.',
    }),
  }),
});

const VolumeConnectionRef = builder.objectRef<VolumePage>('VolumeConnection').implement({
  description: 'One page of volumes, sorted by name.',
  fields: (t) => ({
    nodes: t.field({ type: [VolumeRef], extensions: { listSize: 1 }, resolve: (page) => page.nodes }),
    totalCount: t.exposeInt('totalCount', { description: 'Volumes matching the filters, on every page.' }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (page) => page }),
  }),
});

function encodeCursor(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const name = cursor.length <= 400 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (name === '' || encodeCursor(name) !== cursor) {
    throw new HornbillError('INVALID_ARGUMENT', 'after is not a cursor this API returned', {
      field: 'after',
    });
  }
  return name;
}

/** Object kinds and names are at most 253 characters; a longer filter matches nothing and is refused. */
export function checkFilterLength(value: string | null | undefined, field: string): void {
  if (value != null && value.length > 253) {
    throw new HornbillError('INVALID_ARGUMENT', `${field} is longer than 253 characters`, { field });
  }
}

function settingEntry(context: GraphQLContext, name: string) {
  return context.loader.get('Setting', name).then((resource) => {
    if (!isSettingName(name)) return null;
    return { name, definition: SETTINGS[name], resource };
  });
}

builder.mutationType({
  description: 'Operator actions; each needs a bearer token with scope write (admin where noted).',
});

builder.queryType({
  fields: (t) => ({
    volumes: t.field({
      type: VolumeConnectionRef,
      description: 'Volumes sorted by name; `node` matches where a volume is attached.',
      args: {
        first: t.arg.int({ defaultValue: DEFAULT_VOLUME_PAGE, description: 'At most 500.' }),
        after: t.arg.string(),
        state: t.arg({ type: VolumeStateEnum }),
        robustness: t.arg({ type: VolumeRobustnessEnum }),
        node: t.arg.string(),
      },
      extensions: { listSizeArgument: 'first' },
      resolve: async (_root, args, context) => {
        const first = checkedFirst(args.first, DEFAULT_VOLUME_PAGE);
        const after = args.after == null ? undefined : decodeCursor(args.after);
        const matching = (await context.loader.list('Volume')).filter(
          (volume) =>
            (args.state == null || volume.status?.state === args.state) &&
            (args.robustness == null || volume.status?.robustness === args.robustness) &&
            (args.node == null || volume.status?.currentNodeID === args.node),
        );
        const start = after === undefined ? 0 : matching.findIndex((volume) => volume.metadata.name > after);
        const rest = start < 0 ? [] : matching.slice(start);
        const nodes = rest.slice(0, first);
        const last = nodes.at(-1);
        return {
          nodes,
          totalCount: matching.length,
          hasNextPage: rest.length > nodes.length,
          endCursor: last === undefined ? null : encodeCursor(last.metadata.name),
        };
      },
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      description: 'One volume; null when it does not exist.',
      args: { name: t.arg.string({ required: true }) },
      resolve: (_root, { name }, context) => {
        checkName('Volume', name, 'name');
        return context.loader.get('Volume', name);
      },
    }),
    replicas: t.field({
      type: [ReplicaRef],
      description: 'Replicas, optionally of one volume or on one node.',
      args: { volume: t.arg.string(), node: t.arg.string() },
      extensions: { listSize: 200 },
      resolve: async (_root, args, context) =>
        (await context.loader.list('Replica')).filter(
          (replica) =>
            (args.volume == null || replica.spec.volumeName === args.volume) &&
            (args.node == null || replica.spec.nodeID === args.node),
        ),
    }),
    snapshots: t.field({
      type: [SnapshotRef],
      description: 'The snapshots of a volume (resources and what the engine reports).',
      args: { volume: t.arg.string({ required: true }) },
      extensions: { listSize: 250 },
      resolve: async (_root, { volume }, context) => {
        checkName('Volume', volume, 'volume');
        return snapshotViews(
          volume,
          await context.loader.list('Snapshot'),
          await engineOfVolume(context, volume),
        );
      },
    }),
    nodes: t.field({ type: [NodeRef], resolve: (_root, _arguments, context) => context.loader.list('Node') }),
    node: t.field({
      type: NodeRef,
      nullable: true,
      args: { name: t.arg.string({ required: true }) },
      resolve: (_root, { name }, context) => {
        checkName('Node', name, 'name');
        return context.loader.get('Node', name);
      },
    }),
    settings: t.field({
      type: [SettingRef],
      description: 'Every known setting, with its default where it is not set.',
      extensions: { listSize: SETTING_NAMES.length },
      resolve: async (_root, _arguments, context) => {
        const resources = new Map(
          (await context.loader.list('Setting')).map((item) => [item.metadata.name, item]),
        );
        return SETTING_NAMES.map((name) => ({
          name,
          definition: SETTINGS[name],
          resource: resources.get(name),
        }));
      },
    }),
    setting: t.field({
      type: SettingRef,
      nullable: true,
      description: 'One setting; null when no setting has this name.',
      args: { name: t.arg.string({ required: true }) },
      resolve: (_root, { name }, context) => (isSettingName(name) ? settingEntry(context, name) : null),
    }),
    events: t.field({
      type: [EventRef],
      description: 'Events, newest first; optionally only those about one object.',
      args: {
        kind: t.arg.string({ description: 'Volume, Node, Replica, ...' }),
        name: t.arg.string(),
        first: t.arg.int({ defaultValue: DEFAULT_EVENT_PAGE, description: 'At most 500.' }),
      },
      extensions: { listSizeArgument: 'first' },
      resolve: async (_root, args, context) => {
        const first = checkedFirst(args.first, DEFAULT_EVENT_PAGE);
        checkFilterLength(args.kind, 'kind');
        checkFilterLength(args.name, 'name');
        const involvedObject: { kind?: string; name?: string } = {};
        if (args.kind != null) involvedObject.kind = args.kind;
        if (args.name != null) involvedObject.name = args.name;
        const events = await context.store.listEvents({ namespace: context.namespace, involvedObject });
        return events.reverse().slice(0, first);
      },
    }),
    instanceManagers: t.field({
      type: [InstanceManagerRef],
      resolve: (_root, _arguments, context) => context.loader.list('InstanceManager'),
    }),
    backups: t.field({
      type: [BackupRef],
      description: 'Backups, optionally of one volume.',
      args: { volume: t.arg.string() },
      extensions: { listSize: 100 },
      resolve: async (_root, { volume }, context) =>
        (await context.loader.list('Backup')).filter(
          (backup) => volume == null || (backup.spec.volumeName ?? backup.status?.volumeName) === volume,
        ),
    }),
    backupTargets: t.field({
      type: [BackupTargetRef],
      resolve: (_root, _arguments, context) => context.loader.list('BackupTarget'),
    }),
  }),
});
