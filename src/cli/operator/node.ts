/**
 * `hornbill node ls` (NAME READY SCHEDULABLE ALLOW-SCHEDULING TAGS DISKS AGE; wide: +
 * storage available / maximum / scheduled, replicas, eviction, zone) and `hornbill node
 * update NAME [--scheduling on|off] [--tags a,b] [--evict on|off]` (scope admin).
 */
import { HornbillError } from '../../errors.ts';
import { formatBytes } from '../output.ts';
import { type CommandIO, clientFor, dispatch, printUsage } from './command.ts';
import { COMMON_USAGE, parseCommand, parseList, parseSwitch, stringFlag } from './flags.ts';
import { ageOf, cell, document, table } from './format.ts';

const USAGE = `Usage: hornbill node <command>

Commands:
  ls [NAME]                         nodes: NAME READY SCHEDULABLE ALLOW-SCHEDULING TAGS DISKS AGE
  update NAME [--scheduling on|off] [--tags a,b] [--evict on|off]
                                    change a node (scope admin); --tags "" clears the tags

${COMMON_USAGE}`;

interface DiskView {
  name: string;
  path: string;
  allowScheduling: boolean;
  storageMaximum: string | null;
  storageAvailable: string | null;
  storageScheduled: string | null;
  tags: string[];
}

interface NodeView {
  name: string;
  ready: boolean;
  schedulable: boolean;
  allowScheduling: boolean;
  evictionRequested: boolean;
  tags: string[];
  zone: string | null;
  creationTimestamp: string;
  disks: DiskView[];
  replicas: { name: string }[];
  [field: string]: unknown;
}

const NODE_FIELDS = `name ready schedulable allowScheduling evictionRequested tags zone region creationTimestamp
  conditions { type status reason message }
  disks { name path allowScheduling evictionRequested storageMaximum storageAvailable storageScheduled storageReserved tags }
  replicas { name }`;

/** The sum of a byte field over the disks, formatted; `<unknown>` when no disk reports it. */
function diskTotal(
  disks: DiskView[],
  field: 'storageMaximum' | 'storageAvailable' | 'storageScheduled',
): string {
  const values = disks.map((disk) => disk[field]).filter((value): value is string => value !== null);
  if (values.length === 0) return '<unknown>';
  return formatBytes(values.reduce((sum, value) => sum + Number(value), 0));
}

export function nodeRow(node: NodeView, wide: boolean, nowMs: number): string[] {
  return [
    node.name,
    String(node.ready),
    String(node.schedulable),
    String(node.allowScheduling),
    node.tags.length === 0 ? '<none>' : node.tags.join(','),
    String(node.disks.length),
    ageOf(node.creationTimestamp, nowMs),
    ...(wide
      ? [
          diskTotal(node.disks, 'storageAvailable'),
          diskTotal(node.disks, 'storageMaximum'),
          diskTotal(node.disks, 'storageScheduled'),
          String(node.replicas.length),
          String(node.evictionRequested),
          cell(node.zone),
        ]
      : []),
  ];
}

async function list(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 0, max: 1, names: '[NAME]' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const client = clientFor(parsed);
  let nodes: NodeView[];
  if (name === undefined)
    nodes = (await client.query<{ nodes: NodeView[] }>(`{ nodes { ${NODE_FIELDS} } }`)).nodes;
  else {
    const { node } = await client.query<{ node: NodeView | null }>(
      `query($name: String!) { node(name: $name) { ${NODE_FIELDS} } }`,
      { name },
    );
    if (node === null) throw new HornbillError('RESOURCE_NOT_FOUND', `node ${name} not found`);
    nodes = [node];
  }
  if (parsed.output === 'json' || parsed.output === 'yaml') {
    io.print(document(name === undefined ? { kind: 'List', items: nodes } : nodes[0], parsed.output));
    return 0;
  }
  const wide = parsed.output === 'wide';
  const header = [
    'NAME',
    'READY',
    'SCHEDULABLE',
    'ALLOW-SCHEDULING',
    'TAGS',
    'DISKS',
    'AGE',
    ...(wide ? ['AVAILABLE', 'MAXIMUM', 'SCHEDULED', 'REPLICAS', 'EVICTING', 'ZONE'] : []),
  ];
  const nowMs = Date.now();
  io.print(
    table(
      header,
      nodes.map((node) => nodeRow(node, wide, nowMs)),
    ),
  );
  return 0;
}

async function update(argv: string[], io: CommandIO): Promise<number> {
  const options = {
    scheduling: { type: 'string' },
    tags: { type: 'string' },
    evict: { type: 'string' },
  } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const tags = stringFlag(parsed, 'tags');
  const variables = {
    name,
    allowScheduling: parseSwitch(parsed.values.scheduling, '--scheduling'),
    evictionRequested: parseSwitch(parsed.values.evict, '--evict'),
    tags: tags === undefined ? undefined : parseList(tags),
  };
  if (
    variables.allowScheduling === undefined &&
    variables.evictionRequested === undefined &&
    tags === undefined
  ) {
    throw new HornbillError('CLI_USAGE', `give --scheduling, --tags or --evict\n${USAGE}`);
  }
  const payload = await clientFor(parsed).mutate<{ node: NodeView; errors: [] }>(
    `mutation($name: String!, $allowScheduling: Boolean, $evictionRequested: Boolean, $tags: [String!]) {
      updateNode(name: $name, allowScheduling: $allowScheduling, evictionRequested: $evictionRequested, tags: $tags) {
        node { ${NODE_FIELDS} } errors { code message field } } }`,
    variables,
    'updateNode',
  );
  if (parsed.output === 'json' || parsed.output === 'yaml') io.print(document(payload.node, parsed.output));
  else io.print(`node/${name} updated\n`);
  return 0;
}

export function nodeCommand(argv: string[], io: CommandIO): Promise<number> {
  return dispatch('node', argv, { ls: list, list, get: list, update }, USAGE, io);
}
