/**
 * `hornbill snapshot ls|create|delete|revert`: a volume's snapshots as a tree (parent →
 * children, oldest at the top; branches are indented, a plain chain is not), with sizes,
 * whether a user made them and whether they are removed and waiting for a purge.
 */
import { HornbillError } from '../../errors.ts';
import { type CommandIO, clientFor, dispatch, printUsage } from './command.ts';
import { COMMON_USAGE, parseCommand, parseLabels } from './flags.ts';
import { ageOf, bytesCell, document, labelsCell, table } from './format.ts';

const USAGE = `Usage: hornbill snapshot <command> VOLUME …

Commands:
  ls VOLUME                          the snapshot tree: NAME SIZE USER-CREATED REMOVED AGE (wide: + READY LABELS)
  create VOLUME [NAME] [--label k=v]  take a snapshot of an attached volume (a name is generated when absent)
  delete VOLUME NAME                 mark a snapshot removed (its data is folded into its child by a purge)
  revert VOLUME NAME                 revert the volume to a snapshot (attached without a frontend)

${COMMON_USAGE}`;

export interface SnapshotView {
  name: string;
  parent: string | null;
  children: string[];
  size: string | null;
  userCreated: boolean;
  removed: boolean;
  readyToUse: boolean;
  creationTime: string | null;
  labels: { key: string; value: string }[];
  [field: string]: unknown;
}

export const SNAPSHOT_FIELDS =
  'name volumeName parent children size restoreSize userCreated removed readyToUse deleting hasResource creationTime checksum error labels { key value }';

/** The live layer the engine writes to; it shows up as a child but is no snapshot. */
const VOLUME_HEAD = 'volume-head';

/**
 * Each snapshot (and the volume head) once, in tree order, with its name prefixed by the
 * tree's connectors. Roots are the snapshots without a (known) parent, oldest first.
 * Children come from the `parent` links (a `children` list can lag behind a newer
 * snapshot); the volume head goes under the newest snapshot that lists it and has no
 * child snapshot.
 */
export function snapshotTree(
  snapshots: SnapshotView[],
): { prefix: string; name: string; snapshot?: SnapshotView }[] {
  const byName = new Map(snapshots.map((snapshot) => [snapshot.name, snapshot]));
  const byAge = (left: string, right: string) =>
    (byName.get(left)?.creationTime ?? '~').localeCompare(byName.get(right)?.creationTime ?? '~') ||
    left.localeCompare(right);
  const children = new Map<string, string[]>();
  for (const snapshot of snapshots) {
    if (snapshot.parent !== null && byName.has(snapshot.parent)) {
      children.set(snapshot.parent, [...(children.get(snapshot.parent) ?? []), snapshot.name]);
    }
  }
  const headOwner = snapshots
    .filter((snapshot) => snapshot.children.includes(VOLUME_HEAD) && !children.has(snapshot.name))
    .map((snapshot) => snapshot.name)
    .sort(byAge)
    .pop();
  if (headOwner !== undefined && !byName.has(VOLUME_HEAD)) children.set(headOwner, [VOLUME_HEAD]);
  const rows: { prefix: string; name: string; snapshot?: SnapshotView }[] = [];
  const seen = new Set<string>();
  const walk = (name: string, linePrefix: string, childPrefix: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    rows.push({ prefix: linePrefix, name, snapshot: byName.get(name) });
    const next = [...(children.get(name) ?? [])].sort(byAge);
    if (next.length === 1) walk(next[0], childPrefix, childPrefix);
    else
      next.forEach((child, index) => {
        const last = index === next.length - 1;
        walk(child, `${childPrefix}${last ? '└─ ' : '├─ '}`, `${childPrefix}${last ? '   ' : '│  '}`);
      });
  };
  const roots = snapshots
    .filter((snapshot) => snapshot.parent === null || !byName.has(snapshot.parent))
    .map((snapshot) => snapshot.name)
    .sort(byAge);
  for (const root of roots) walk(root, '', '');
  // Cycles (which should not happen) still get every snapshot printed, flat.
  for (const snapshot of [...snapshots].sort((left, right) => byAge(left.name, right.name)))
    walk(snapshot.name, '', '');
  return rows;
}

function snapshotRows(snapshots: SnapshotView[], wide: boolean, nowMs: number): string[][] {
  return snapshotTree(snapshots).map(({ prefix, name, snapshot }) => {
    if (snapshot === undefined) {
      const live = name === VOLUME_HEAD ? '(live)' : '<unknown>';
      return [`${prefix}${name}`, live, '', '', '', ...(wide ? ['', ''] : [])];
    }
    return [
      `${prefix}${name}`,
      bytesCell(snapshot.size),
      String(snapshot.userCreated),
      String(snapshot.removed),
      ageOf(snapshot.creationTime, nowMs),
      ...(wide ? [String(snapshot.readyToUse), labelsCell(snapshot.labels)] : []),
    ];
  });
}

async function list(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 1, max: 1, names: 'VOLUME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [volume] = parsed.positionals;
  const client = clientFor(parsed);
  const data = await client.query<{ volume: { name: string } | null; snapshots: SnapshotView[] }>(
    `query($volume: String!) { volume(name: $volume) { name } snapshots(volume: $volume) { ${SNAPSHOT_FIELDS} } }`,
    { volume },
  );
  if (data.volume === null) throw new HornbillError('RESOURCE_NOT_FOUND', `volume ${volume} not found`);
  if (parsed.output === 'json' || parsed.output === 'yaml') {
    io.print(document({ kind: 'List', items: data.snapshots }, parsed.output));
    return 0;
  }
  const wide = parsed.output === 'wide';
  const header = ['NAME', 'SIZE', 'USER-CREATED', 'REMOVED', 'AGE', ...(wide ? ['READY', 'LABELS'] : [])];
  io.print(
    table(header, snapshotRows(data.snapshots, wide, Date.now()), `No snapshots of volume ${volume}.`),
  );
  return 0;
}

async function create(argv: string[], io: CommandIO): Promise<number> {
  const options = { label: { type: 'string', multiple: true } } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 1, max: 2, names: 'VOLUME [NAME]' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [volume, name] = parsed.positionals;
  const labels = parseLabels(parsed.values.label);
  const payload = await clientFor(parsed).mutate<{ snapshot: SnapshotView; errors: [] }>(
    `mutation($volume: String!, $name: String, $labels: [LabelInput!]) {
      createSnapshot(volume: $volume, name: $name, labels: $labels) { snapshot { ${SNAPSHOT_FIELDS} } errors { code message field } } }`,
    { volume, name, labels: labels.length === 0 ? undefined : labels },
    'createSnapshot',
  );
  if (parsed.output === 'json' || parsed.output === 'yaml')
    io.print(document(payload.snapshot, parsed.output));
  else io.print(`snapshot/${payload.snapshot.name} created\n`);
  return 0;
}

async function remove(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 2, max: 2, names: 'VOLUME NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [volume, name] = parsed.positionals;
  await clientFor(parsed).mutate(
    `mutation($volume: String!, $name: String!) { deleteSnapshot(volume: $volume, name: $name) { errors { code message field } } }`,
    { volume, name },
    'deleteSnapshot',
  );
  io.print(`snapshot/${name} deleted\n`);
  return 0;
}

async function revert(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 2, max: 2, names: 'VOLUME NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [volume, name] = parsed.positionals;
  await clientFor(parsed).mutate(
    `mutation($volume: String!, $name: String!) { revertSnapshot(volume: $volume, name: $name) { errors { code message field } } }`,
    { volume, name },
    'revertSnapshot',
  );
  io.print(`volume/${volume} revert to snapshot/${name} requested\n`);
  return 0;
}

export function snapshotCommand(argv: string[], io: CommandIO): Promise<number> {
  return dispatch(
    'snapshot',
    argv,
    { ls: list, list, create, delete: remove, rm: remove, revert },
    USAGE,
    io,
  );
}
