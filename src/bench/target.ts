import { type Connection, GraphQLClient, resolveConnection } from '../cli/operator/client.ts';
import { HornbillError } from '../errors.ts';
import type { BlockConnection } from './connection.ts';
import { IscsiConnection, type IscsiEndpoint } from './iscsi-connection.ts';
import { NbdClient, type NbdEndpoint } from './nbd-client.ts';

/**
 * Where `hornbill bench` sends its I/O:
 *
 *   iscsi://HOST:PORT/IQN/LUN   an iSCSI LUN (Hornbill's target, tgtd, any RFC 7143 target)
 *   nbd://HOST:PORT/EXPORT      an NBD export (Hornbill's server, qemu-nbd, nbdkit)
 *   engine:VOLUME / --volume    a volume of the running cluster, by name (see resolveVolume)
 */
export type TargetAddress =
  | { kind: 'iscsi'; endpoint: IscsiEndpoint }
  | { kind: 'nbd'; endpoint: NbdEndpoint }
  | { kind: 'volume'; name: string };

export const TARGET_FORMS = 'iscsi://HOST:PORT/IQN/LUN, nbd://HOST:PORT/EXPORT or engine:VOLUME';

function badTarget(text: string, why: string): HornbillError {
  return new HornbillError(
    'BENCH_TARGET_INVALID',
    `--target ${JSON.stringify(text)}: ${why} (${TARGET_FORMS})`,
  );
}

function hostAndPort(authority: string, text: string, defaultPort: number): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:/\s]+)(?::(\d{1,5}))?$/.exec(authority);
  if (match === null) throw badTarget(text, `${JSON.stringify(authority)} is not HOST or HOST:PORT`);
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port < 1 || port > 65535) throw badTarget(text, `port ${port} is out of range`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

export function parseTarget(text: string): TargetAddress {
  if (text.startsWith('engine:')) {
    const name = text.slice('engine:'.length);
    if (name === '') throw badTarget(text, 'engine: needs a volume name');
    return { kind: 'volume', name };
  }
  const scheme = /^([a-z]+):\/\/([^/]*)(\/.*)?$/.exec(text);
  if (scheme === null) throw badTarget(text, 'not a URL');
  const [, kind, authority, path = ''] = scheme;
  if (kind === 'iscsi') {
    const { host, port } = hostAndPort(authority, text, 3260);
    const parts = path.split('/').filter((part) => part !== '');
    if (parts.length !== 2) throw badTarget(text, 'an iSCSI target needs /IQN/LUN after the address');
    const lun = Number(parts[1]);
    if (!Number.isInteger(lun) || lun < 0 || lun > 16383)
      throw badTarget(text, `LUN ${parts[1]} is not 0-16383`);
    return { kind: 'iscsi', endpoint: { host, port, targetName: decodeURIComponent(parts[0]), lun } };
  }
  if (kind === 'nbd') {
    const { host, port } = hostAndPort(authority, text, 10809);
    return { kind: 'nbd', endpoint: { host, port, exportName: decodeURIComponent(path.replace(/^\//, '')) } };
  }
  throw badTarget(text, `unknown scheme ${kind}://`);
}

/**
 * A volume of the running cluster, by name, to the frontend endpoint its engine serves:
 * asked from the manager's GraphQL API (`volume(name) { state endpoint }`), with the server
 * and token the operator CLI uses (--server / HORNBILL_SERVER, --token / HORNBILL_TOKEN /
 * ~/.config/hornbill/token). A volume that is missing, or not attached with a frontend, is
 * BENCH_VOLUME_NOT_ATTACHED before any I/O.
 */
export async function resolveVolume(
  name: string,
  connection: Connection = resolveConnection({}),
): Promise<TargetAddress> {
  const client = new GraphQLClient(connection);
  const { volume } = await client.query<{ volume: { state: string | null; endpoint: string | null } | null }>(
    'query BenchTarget($name: String!) { volume(name: $name) { state endpoint } }',
    { name },
  );
  if (volume === null)
    throw new HornbillError('BENCH_VOLUME_NOT_ATTACHED', `volume ${JSON.stringify(name)} does not exist`, {
      volume: name,
    });
  if (volume.endpoint === null || volume.endpoint === '')
    throw new HornbillError(
      'BENCH_VOLUME_NOT_ATTACHED',
      `volume ${JSON.stringify(name)} is ${volume.state ?? 'not ready'} and serves no frontend: attach it first ` +
        `(hornbill volume attach ${name} --node NODE)`,
      { volume: name, state: volume.state },
    );
  const address = parseTarget(volume.endpoint);
  if (address.kind === 'volume')
    throw new HornbillError('BENCH_TARGET_INVALID', `volume ${name} has endpoint ${volume.endpoint}`, {
      volume: name,
    });
  return address;
}

/** Opens one connection (each job clone has its own, as each fio job has its own file). */
export async function openConnection(address: TargetAddress, queueDepth: number): Promise<BlockConnection> {
  switch (address.kind) {
    case 'iscsi':
      return IscsiConnection.open(address.endpoint, queueDepth);
    case 'nbd':
      return NbdClient.open(address.endpoint, queueDepth);
    case 'volume':
      return openConnection(await resolveVolume(address.name), queueDepth);
  }
}

export function describeTarget(address: TargetAddress): string {
  switch (address.kind) {
    case 'iscsi': {
      const { host, port, targetName, lun } = address.endpoint;
      return `iscsi://${host}:${port}/${targetName}/${lun}`;
    }
    case 'nbd': {
      const { host, port, exportName } = address.endpoint;
      return `nbd://${host}:${port}/${exportName}`;
    }
    case 'volume':
      return `engine:${address.name}`;
  }
}
