/** `hornbill manager`: the control plane — store, controllers, HTTP API (docs/manager.md). */
import path from 'node:path';
import { HornbillError } from '../errors.ts';
import { type LogLevel, stderrLogger } from '../logging.ts';
import { type InstanceManagerEndpoint, startManager } from '../manager/manager.ts';
import { RESOURCE_API_PREFIX } from '../manager/resource-api.ts';
import { DEFAULT_NAMESPACE } from '../resources/api.ts';
import { announce, parseAddress, parseFlags, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const MANAGER_USAGE = `Usage:
  hornbill manager --store embedded:DIR [--listen 127.0.0.1:9500]
                   [--instance-manager NODE=HOST:PORT[,disk=PATH…][,address=IP] …]
                   [--setting NAME=VALUE …] [--namespace hornbill-system] [--log-level info]
                   [--change-log-limit 10000] [--no-controllers]
      Runs the control plane: the state store (embedded LMDB in DIR), the controllers, and
      an HTTP server on --listen with /healthz, /metrics and the resource API under
      ${RESOURCE_API_PREFIX}. Each --instance-manager names a node, the gRPC address of
      its instance manager and its disks (address defaults to the gRPC host). --setting
      writes a Setting resource before the controllers start. Port 0 picks a free port.
      Prints one JSON line on stdout when ready, logs JSON lines to stderr, stops cleanly on
      SIGTERM or SIGINT. --change-log-limit is how many changes the store keeps for watches
      to resume from; --no-controllers serves the store alone.`;

export interface ManagerFlags {
  storeDirectory: string;
  listen: { host: string; port: number };
  namespace: string;
  instanceManagers: InstanceManagerEndpoint[];
  settings: Record<string, string>;
  logLevel: LogLevel;
  changeLogLimit: number | undefined;
  controllers: boolean;
}

function usage(message: string): HornbillError {
  return new HornbillError('CLI_USAGE', `${message}\n${MANAGER_USAGE}`);
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `node-1=127.0.0.11:8500,disk=/data/a,disk=/data/b[,address=127.0.0.11]` */
export function parseInstanceManagerSpec(text: string): InstanceManagerEndpoint {
  const [head, ...options] = text.split(',');
  const equals = head.indexOf('=');
  const nodeID = equals < 0 ? '' : head.slice(0, equals);
  if (!NODE_NAME.test(nodeID) || nodeID.length > 253)
    throw usage(`--instance-manager must start with NODE=HOST:PORT, not ${JSON.stringify(text)}`);
  const grpc = parseAddress(head.slice(equals + 1), '--instance-manager');
  const disks: string[] = [];
  let address = grpc.host;
  for (const option of options) {
    const [key, ...rest] = option.split('=');
    const value = rest.join('=');
    if (key === 'disk' && value !== '') disks.push(path.resolve(value));
    else if (key === 'address' && value !== '') address = value;
    else throw usage(`--instance-manager option ${JSON.stringify(option)} is not disk=PATH or address=IP`);
  }
  return { nodeID, grpcAddress: `${grpc.host}:${grpc.port}`, address, disks };
}

export function parseManagerFlags(argv: string[]): ManagerFlags {
  const { values } = parseFlags(
    argv,
    {
      store: { type: 'string' },
      listen: { type: 'string' },
      namespace: { type: 'string' },
      'instance-manager': { type: 'string', multiple: true },
      setting: { type: 'string', multiple: true },
      'log-level': { type: 'string' },
      'change-log-limit': { type: 'string' },
      'no-controllers': { type: 'boolean' },
    },
    MANAGER_USAGE,
  );
  const store = values.store ?? '';
  if (store === 'kubernetes')
    throw usage('--store kubernetes is not in this build yet; use --store embedded:DIR');
  if (!store.startsWith('embedded:') || store.length === 'embedded:'.length)
    throw usage(`--store must be embedded:DIR, not ${JSON.stringify(store)}`);
  const instanceManagers = (values['instance-manager'] ?? []).map(parseInstanceManagerSpec);
  const nodes = instanceManagers.map((endpoint) => endpoint.nodeID);
  if (new Set(nodes).size !== nodes.length) throw usage('a node is given twice in --instance-manager');
  const settings: Record<string, string> = {};
  for (const setting of values.setting ?? []) {
    const equals = setting.indexOf('=');
    if (equals <= 0) throw usage(`--setting must be NAME=VALUE, not ${JSON.stringify(setting)}`);
    settings[setting.slice(0, equals)] = setting.slice(equals + 1);
  }
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw usage('--log-level must be debug, info, warn or error');
  const limitText = values['change-log-limit'];
  if (limitText !== undefined && !/^[1-9]\d{0,8}$/.test(limitText))
    throw usage('--change-log-limit must be a positive number of changes');
  return {
    changeLogLimit: limitText === undefined ? undefined : Number(limitText),
    controllers: values['no-controllers'] !== true,
    storeDirectory: path.resolve(store.slice('embedded:'.length)),
    listen: parseAddress(values.listen ?? '127.0.0.1:9500', '--listen'),
    namespace: values.namespace ?? DEFAULT_NAMESPACE,
    instanceManagers,
    settings,
    logLevel,
  };
}

export async function managerCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${MANAGER_USAGE}\n`);
    return ExitCode.OK;
  }
  const flags = parseManagerFlags(argv);
  const log = stderrLogger('manager', flags.logLevel);
  let onStoreFailed: () => void = () => {};
  const storeFailed = new Promise<void>((resolve) => {
    onStoreFailed = resolve;
  });
  const manager = await startManager({
    onStoreFailed: () => onStoreFailed(),
    storeDirectory: flags.storeDirectory,
    listen: flags.listen,
    namespace: flags.namespace,
    instanceManagers: flags.instanceManagers,
    settings: flags.settings,
    changeLogLimit: flags.changeLogLimit,
    controllers: flags.controllers,
    log,
  });
  log('info', 'manager serving', {
    url: manager.url,
    store: flags.storeDirectory,
    controllers: manager.controllersRunning,
    instanceManagers: flags.instanceManagers,
  });
  announce({
    role: 'manager',
    url: manager.url,
    api: `${manager.url}${RESOURCE_API_PREFIX}`,
    metrics: `${manager.url}/metrics`,
    listen: { host: manager.host, port: manager.port },
    namespace: flags.namespace,
    store: { backend: 'embedded', directory: flags.storeDirectory },
    controllers: manager.controllersRunning,
    instanceManagers: flags.instanceManagers,
  });
  const signalled = untilSignal(async () => {
    log('info', 'manager stopping', {});
    await manager.close();
  }).then(() => ExitCode.OK);
  const failed = storeFailed.then(async () => {
    await manager.close();
    return ExitCode.FAILED;
  });
  return Promise.race([signalled, failed]);
}
