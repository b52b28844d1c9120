/**
 * `hornbill volume ls|create|delete|attach|detach|expand|update|salvage|inspect`. `ls`
 * prints the columns of `kubectl get volumes.longhorn.io` — NAME STATE ROBUSTNESS SIZE
 * NODE AGE — and `-o wide` adds REPLICAS ACCESS-MODE DATA-LOCALITY FRONTEND ENDPOINT.
 * `ls --watch` and `inspect --watch` follow the `volumeChanged` subscription (volume-watch.ts).
 */
import { HornbillError } from '../../errors.ts';
import { parseDuration, parseSize } from '../args.ts';
import type { GraphQLClient } from './client.ts';
import { type CommandIO, clientFor, dispatch, printUsage, waitUntil } from './command.ts';
import { COMMON_USAGE, parseChoice, parseCommand, parseCount, parseList, stringFlag } from './flags.ts';
import { document, table } from './format.ts';
import { inspectVolume } from './volume-inspect.ts';
import {
  listVolumes,
  VOLUME_FIELDS,
  VOLUME_HEADER,
  VOLUME_WIDE_HEADER,
  type VolumeView,
  volumeRow,
} from './volume-view.ts';
import { watchVolumes } from './volume-watch.ts';

const USAGE = `Usage: hornbill volume <command> …

Commands:
  ls [--state S] [--node N] [--watch]     volumes: NAME STATE ROBUSTNESS SIZE NODE AGE (-o wide: + REPLICAS …)
  create NAME --size 2Gi [--replicas 3] [--frontend iscsi|nbd] [--access-mode rwo|rwop|rwx]
         [--data-locality disabled|best-effort|strict-local] [--node-selector a,b] [--disk-selector a,b] [--wait]
  delete NAME [--wait]                    delete a volume (its engine, replicas and snapshots go with it)
  attach NAME --node N [--frontend iscsi|nbd] [--disable-frontend] [--wait]
  detach NAME [--wait]
  expand NAME --size 4Gi                  grow a volume (online when attached)
  update NAME [--replicas N] [--data-locality …]
  salvage NAME                            bring a faulted volume back from its newest replicas
  inspect NAME [--watch]                  the volume with its engine, replicas, snapshot tree, conditions, events

--wait waits (at most --timeout, default 120s) until the volume is attached, detached or gone.
--watch prints a line per change until Ctrl-C.

${COMMON_USAGE}`;

const STATES = ['creating', 'attached', 'attaching', 'detached', 'detaching', 'deleting'];
const ROBUSTNESS = ['healthy', 'degraded', 'faulted', 'unknown'];

async function list(argv: string[], io: CommandIO): Promise<number> {
  const options = {
    state: { type: 'string' },
    node: { type: 'string' },
    robustness: { type: 'string' },
    watch: { type: 'boolean', short: 'w' },
  } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 0, max: 0, names: '' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const client = clientFor(parsed);
  const filters = {
    state: parseChoice(parsed.values.state, '--state', STATES),
    robustness: parseChoice(parsed.values.robustness, '--robustness', ROBUSTNESS),
    node: stringFlag(parsed, 'node'),
  };
  if (parsed.values.watch === true) return watchVolumes(client, { filters, output: parsed.output }, io);
  const volumes = await listVolumes(client, filters);
  if (parsed.output === 'json' || parsed.output === 'yaml') {
    io.print(document({ kind: 'List', items: volumes }, parsed.output));
    return 0;
  }
  const wide = parsed.output === 'wide';
  const nowMs = Date.now();
  io.print(
    table(
      wide ? VOLUME_WIDE_HEADER : VOLUME_HEADER,
      volumes.map((volume) => volumeRow(volume, wide, nowMs)),
    ),
  );
  return 0;
}

/** Prints what a mutation wrote: `volume/NAME <verb>`, or the object with -o json|yaml. */
function printWritten(io: CommandIO, output: string, volume: VolumeView | null, name: string, verb: string) {
  if ((output === 'json' || output === 'yaml') && volume !== null) io.print(document(volume, output));
  else io.print(`volume/${name} ${verb}\n`);
}

const WAIT_OPTIONS = { wait: { type: 'boolean' }, timeout: { type: 'string' } } as const;

async function stateOf(client: GraphQLClient, name: string): Promise<string | null | undefined> {
  const { volume } = await client.query<{ volume: { state: string | null } | null }>(
    'query($name: String!) { volume(name: $name) { state } }',
    { name },
  );
  return volume === null ? undefined : volume.state;
}

/** With --wait: polls until the volume's state is `state` (undefined: until it is gone). */
async function maybeWait(
  client: GraphQLClient,
  values: Record<string, unknown>,
  name: string,
  state: string | undefined,
) {
  if (values.wait !== true) return;
  const timeoutMs =
    values.timeout === undefined ? 120_000 : parseDuration(String(values.timeout), '--timeout');
  await waitUntil(
    async () => (await stateOf(client, name)) === state,
    timeoutMs,
    state === undefined ? `deleting volume ${name}` : `volume ${name} becoming ${state.toLowerCase()}`,
  );
}

async function create(argv: string[], io: CommandIO): Promise<number> {
  const options = {
    size: { type: 'string' },
    replicas: { type: 'string' },
    frontend: { type: 'string' },
    'access-mode': { type: 'string' },
    'data-locality': { type: 'string' },
    'node-selector': { type: 'string' },
    'disk-selector': { type: 'string' },
    ...WAIT_OPTIONS,
  } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const size = stringFlag(parsed, 'size');
  if (size === undefined) throw new HornbillError('CLI_USAGE', `--size is required\n${USAGE}`);
  parseSize(size, '--size');
  const nodeSelector = stringFlag(parsed, 'node-selector');
  const diskSelector = stringFlag(parsed, 'disk-selector');
  const input = {
    name,
    size,
    numberOfReplicas: parseCount(parsed.values.replicas, '--replicas', 20),
    frontend: parseChoice(parsed.values.frontend, '--frontend', ['iscsi', 'nbd']),
    accessMode: parseChoice(parsed.values['access-mode'], '--access-mode', ['rwo', 'rwop', 'rwx']),
    dataLocality: parseChoice(parsed.values['data-locality'], '--data-locality', [
      'disabled',
      'best-effort',
      'strict-local',
    ]),
    nodeSelector: nodeSelector === undefined ? undefined : parseList(nodeSelector),
    diskSelector: diskSelector === undefined ? undefined : parseList(diskSelector),
  };
  const client = clientFor(parsed);
  const payload = await client.mutate<{ volume: VolumeView; errors: [] }>(
    `mutation($input: CreateVolumeInput!) { createVolume(input: $input) { volume { ${VOLUME_FIELDS} } errors { code message field } } }`,
    { input },
    'createVolume',
  );
  await maybeWait(client, parsed.values, name, 'DETACHED');
  printWritten(io, parsed.output, payload.volume, name, 'created');
  return 0;
}

/** A mutation `field(name: $name …)` returning a VolumePayload. */
async function volumeMutation(
  client: GraphQLClient,
  field: string,
  argumentsText: string,
  variables: Record<string, unknown>,
): Promise<VolumeView | null> {
  const declarations = Object.keys(variables)
    .map((key) => `$${key}: ${VARIABLE_TYPES[key]}`)
    .join(', ');
  const payload = await client.mutate<{ volume: VolumeView | null; errors: [] }>(
    `mutation(${declarations}) { ${field}(${argumentsText}) { volume { ${VOLUME_FIELDS} } errors { code message field } } }`,
    variables,
    field,
  );
  return payload.volume;
}

const VARIABLE_TYPES: Record<string, string> = {
  name: 'String!',
  node: 'String!',
  frontend: 'Frontend',
  disableFrontend: 'Boolean',
  size: 'String!',
  replicaCount: 'Int!',
  dataLocality: 'DataLocality!',
};

async function remove(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, WAIT_OPTIONS, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const client = clientFor(parsed);
  const volume = await volumeMutation(client, 'deleteVolume', 'name: $name', { name });
  await maybeWait(client, parsed.values, name, undefined);
  printWritten(io, parsed.output, volume, name, 'deleted');
  return 0;
}

async function attach(argv: string[], io: CommandIO): Promise<number> {
  const options = {
    node: { type: 'string' },
    frontend: { type: 'string' },
    'disable-frontend': { type: 'boolean' },
    ...WAIT_OPTIONS,
  } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const node = stringFlag(parsed, 'node');
  if (node === undefined) throw new HornbillError('CLI_USAGE', `--node is required\n${USAGE}`);
  const client = clientFor(parsed);
  const volume = await volumeMutation(
    client,
    'attachVolume',
    'name: $name, node: $node, frontend: $frontend, disableFrontend: $disableFrontend',
    {
      name,
      node,
      frontend: parseChoice(parsed.values.frontend, '--frontend', ['iscsi', 'nbd']),
      disableFrontend: parsed.values['disable-frontend'] === true ? true : undefined,
    },
  );
  await maybeWait(client, parsed.values, name, 'ATTACHED');
  printWritten(io, parsed.output, volume, name, `attach to ${node} requested`);
  return 0;
}

async function detach(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, WAIT_OPTIONS, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const client = clientFor(parsed);
  const volume = await volumeMutation(client, 'detachVolume', 'name: $name', { name });
  await maybeWait(client, parsed.values, name, 'DETACHED');
  printWritten(io, parsed.output, volume, name, 'detach requested');
  return 0;
}

async function expand(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, { size: { type: 'string' } }, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const size = stringFlag(parsed, 'size');
  if (size === undefined) throw new HornbillError('CLI_USAGE', `--size is required\n${USAGE}`);
  parseSize(size, '--size');
  const volume = await volumeMutation(clientFor(parsed), 'expandVolume', 'name: $name, size: $size', {
    name,
    size,
  });
  printWritten(io, parsed.output, volume, name, `expansion to ${size} requested`);
  return 0;
}

async function update(argv: string[], io: CommandIO): Promise<number> {
  const options = { replicas: { type: 'string' }, 'data-locality': { type: 'string' } } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const replicaCount = parseCount(parsed.values.replicas, '--replicas', 20);
  const dataLocality = parseChoice(parsed.values['data-locality'], '--data-locality', [
    'disabled',
    'best-effort',
    'strict-local',
  ]);
  if (replicaCount === undefined && dataLocality === undefined) {
    throw new HornbillError('CLI_USAGE', `give --replicas or --data-locality\n${USAGE}`);
  }
  const client = clientFor(parsed);
  let volume: VolumeView | null = null;
  if (replicaCount !== undefined) {
    volume = await volumeMutation(client, 'updateReplicaCount', 'name: $name, replicaCount: $replicaCount', {
      name,
      replicaCount,
    });
  }
  if (dataLocality !== undefined) {
    volume = await volumeMutation(client, 'updateDataLocality', 'name: $name, dataLocality: $dataLocality', {
      name,
      dataLocality,
    });
  }
  printWritten(io, parsed.output, volume, name, 'updated');
  return 0;
}

async function salvage(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 1, max: 1, names: 'NAME' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const volume = await volumeMutation(clientFor(parsed), 'salvageVolume', 'name: $name', { name });
  printWritten(io, parsed.output, volume, name, 'salvage requested');
  return 0;
}

async function inspect(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, { watch: { type: 'boolean', short: 'w' } }, USAGE, {
    min: 1,
    max: 1,
    names: 'NAME',
  });
  if (parsed.values.help) return printUsage(io, USAGE);
  return inspectVolume(clientFor(parsed), parsed.positionals[0], {
    output: parsed.output,
    watch: parsed.values.watch === true,
    io,
  });
}

export function volumeCommand(argv: string[], io: CommandIO): Promise<number> {
  return dispatch(
    'volume',
    argv,
    { ls: list, list, create, delete: remove, rm: remove, attach, detach, expand, update, salvage, inspect },
    USAGE,
    io,
  );
}
