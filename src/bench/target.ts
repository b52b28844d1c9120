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
 * A volume of the running cluster, by name, to the frontend endpoint its engine serves.
 *
 * The lookup belongs to the control plane: the volume's Engine resource (issue 5) records
 * its frontend and the node it is attached on, and the cluster API (GraphQL, issue 6)
 * answers `volume(name) { engine { endpoint } }`. Until a cluster API exists there is
 * nothing to ask, so naming a volume is an error with its own code instead of a guess at
 * an address. Benchmark a standalone engine with --target and the address its ready line
 * prints.
 */
export function resolveVolume(name: string): Promise<TargetAddress> {
  return Promise.reject(
    new HornbillError(
      'BENCH_VOLUME_LOOKUP_UNAVAILABLE',
      `cannot look up volume ${JSON.stringify(name)}: resolving a volume name needs the cluster API ` +
        '(the control plane, issue 5), which this build does not have yet. Use --target iscsi://HOST:PORT/IQN/LUN ' +
        'or nbd://HOST:PORT/EXPORT with the address that "hornbill engine" prints when it is ready.',
      { volume: name },
    ),
  );
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
