/**
 * `hornbill up`: the embedded default — a whole cluster on this machine. N instance managers
 * (node-K on consecutive loopback addresses, each with its disk folder under --data) and a
 * manager (embedded store in DATA/state), all children supervised: one that dies is
 * restarted after a back-off. Ctrl-C or SIGTERM stops the manager, then the nodes, and
 * exits 0. A second `up` on the same --data resumes where the first stopped.
 */
import fs from 'node:fs';
import path from 'node:path';
import fsExtensions from 'fs-native-extensions';
import { HornbillError } from '../errors.ts';
import { TokenStore } from '../graphql/index.ts';
import { type LogLevel, stderrLogger } from '../logging.ts';
import { clusterLayout, LocalCluster } from '../manager/local-cluster.ts';
import { LogFiles } from '../manager/log-files.ts';
import { TOKENS_FILE_NAME } from '../manager/manager.ts';
import type { ReadyLine } from '../manager/supervisor.ts';
import { announce, parseAddress, parseFlags, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const UP_USAGE = `Usage:
  hornbill up [--data ./hornbill-data] [--nodes 3] [--listen 127.0.0.1:9500]
              [--base-address 127.0.0.11] [--grpc-port 8500] [--iscsi-port 3260]
              [--nbd-port 10809] [--metrics-port 9502] [--setting NAME=VALUE …]
              [--output text|json]
              [--log-level info]
      Starts a cluster on this machine: --nodes instance managers (node-K listens on the
      base address + K − 1, with its disk in DATA/node-K/disk) and a manager (state in
      DATA/state, GraphQL, HTTP API and metrics on --listen). Prints the URLs, each node's
      addresses and, the first time, an admin token for the GraphQL API (--output json: one
      JSON line). A child that dies is restarted
      after a back-off; Ctrl-C or SIGTERM stops everything cleanly. Port 0 picks free ports.`;

const MAX_NODES = 32;

export interface UpFlags {
  dataDirectory: string;
  nodeCount: number;
  listen: { host: string; port: number };
  baseAddress: string;
  ports: { grpc: number; iscsi: number; nbd: number; metrics: number };
  settings: Record<string, string>;
  output: 'text' | 'json';
  logLevel: LogLevel;
}

function usage(message: string): HornbillError {
  return new HornbillError('CLI_USAGE', `${message}\n${UP_USAGE}`);
}

function portFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw usage(`${flag} must be a port 0-65535`);
  return Number(value);
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function parseUpFlags(argv: string[]): UpFlags {
  const { values } = parseFlags(
    argv,
    {
      data: { type: 'string' },
      nodes: { type: 'string' },
      listen: { type: 'string' },
      'base-address': { type: 'string' },
      'grpc-port': { type: 'string' },
      'iscsi-port': { type: 'string' },
      'nbd-port': { type: 'string' },
      'metrics-port': { type: 'string' },
      setting: { type: 'string', multiple: true },
      output: { type: 'string' },
      'log-level': { type: 'string' },
    },
    UP_USAGE,
  );
  const nodes = values.nodes ?? '3';
  if (!/^\d{1,2}$/.test(nodes) || Number(nodes) < 1 || Number(nodes) > MAX_NODES)
    throw usage(`--nodes must be 1-${MAX_NODES}`);
  const baseAddress = values['base-address'] ?? '127.0.0.11';
  if (!IPV4.test(baseAddress)) throw usage('--base-address must be an IPv4 address');
  if (Number(baseAddress.split('.')[3]) + Number(nodes) - 1 > 254)
    throw usage(`--nodes ${nodes} from --base-address ${baseAddress} run past .254`);
  const settings: Record<string, string> = {};
  for (const setting of values.setting ?? []) {
    const equals = setting.indexOf('=');
    if (equals <= 0) throw usage(`--setting must be NAME=VALUE, not ${JSON.stringify(setting)}`);
    settings[setting.slice(0, equals)] = setting.slice(equals + 1);
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw usage('--output must be text or json');
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw usage('--log-level must be debug, info, warn or error');
  return {
    dataDirectory: path.resolve(values.data ?? 'hornbill-data'),
    nodeCount: Number(nodes),
    listen: parseAddress(values.listen ?? '127.0.0.1:9500', '--listen'),
    baseAddress,
    ports: {
      grpc: portFlag(values['grpc-port'], '--grpc-port', 8500),
      iscsi: portFlag(values['iscsi-port'], '--iscsi-port', 3260),
      nbd: portFlag(values['nbd-port'], '--nbd-port', 10809),
      metrics: portFlag(values['metrics-port'], '--metrics-port', 9502),
    },
    settings,
    output,
    logLevel,
  };
}

/** One `up` per data folder: a second one would fight the first for its ports and store. */
function lockDataDirectory(directory: string): number {
  fs.mkdirSync(directory, { recursive: true });
  const fd = fs.openSync(path.join(directory, 'up.lock'), fs.constants.O_RDWR | fs.constants.O_CREAT);
  if (!fsExtensions.tryLock(fd)) {
    fs.closeSync(fd);
    throw new HornbillError('RESOURCE_STORE_LOCKED', `another hornbill up is running on ${directory}`, {
      directory,
    });
  }
  return fd;
}

/** A child's stderr line as one of up's own log lines, marked with the child's name. */
function forwardLine(name: string, line: string): void {
  let record: Record<string, unknown>;
  try {
    const parsed = JSON.parse(line) as unknown;
    record =
      typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
        ? { process: name, ...(parsed as Record<string, unknown>) }
        : { process: name, message: line };
  } catch {
    record = { time: new Date().toISOString(), level: 'info', process: name, message: line };
  }
  process.stderr.write(`${JSON.stringify(record)}\n`);
}

/**
 * The first `up` on a data folder creates an admin token for the GraphQL API and shows it
 * once (only its hash is kept, in DATA/state/api-tokens.json); later runs say where the
 * tokens are instead.
 */
async function adminToken(dataDirectory: string): Promise<{ token: string | undefined; file: string }> {
  const stateDirectory = clusterLayout(dataDirectory, 0).state;
  fs.mkdirSync(stateDirectory, { recursive: true });
  const file = path.join(stateDirectory, TOKENS_FILE_NAME);
  const tokens = await TokenStore.open(file);
  if (tokens.list().some((record) => record.name === 'admin')) return { token: undefined, file };
  return { token: await tokens.create('admin', 'admin'), file };
}

function summary(
  cluster: LocalCluster,
  token: { token: string | undefined; file: string },
): { text: string; json: Record<string, unknown> } {
  const manager = cluster.manager.ready as ReadyLine;
  const nodes = cluster.nodes.map(({ spec, process }) => {
    const ready = process.ready as ReadyLine;
    return {
      name: spec.name,
      address: spec.address,
      grpc: `${ready.grpc.host}:${ready.grpc.port}`,
      iscsi: `${ready.iscsi.host}:${ready.iscsi.port}`,
      nbd: `${ready.nbd.host}:${ready.nbd.port}`,
      metrics: `http://${ready.metrics.host}:${ready.metrics.port}/metrics`,
      disk: spec.disk,
      pid: process.pid,
    };
  });
  const lines = [
    `hornbill up: ${nodes.length} node${nodes.length === 1 ? '' : 's'}, data in ${cluster.dataDirectory}`,
    `  GraphQL   ${manager.url}/graphql`,
    token.token === undefined
      ? `  token     an admin token was shown when this data folder was first used (hashes in ${token.file})`
      : `  token     ${token.token}   (admin; shown this once — keep it: hornbill volume … --token, or Authorization: Bearer)`,
    `  API       ${manager.api}`,
    `  metrics   ${manager.metrics}`,
    `  health    ${manager.url}/healthz`,
    ...nodes.map(
      (node) =>
        `  ${node.name.padEnd(8)}  ${node.address.padEnd(15)}  gRPC ${node.grpc}  iSCSI ${node.iscsi}  NBD ${node.nbd}  metrics ${node.metrics}  disk ${node.disk}`,
    ),
    'Ctrl-C stops everything.',
  ];
  return {
    text: `${lines.join('\n')}\n`,
    json: {
      role: 'up',
      url: manager.url,
      graphql: `${manager.url}/graphql`,
      ...(token.token === undefined ? {} : { adminToken: token.token }),
      api: manager.api,
      metrics: manager.metrics,
      dataDirectory: cluster.dataDirectory,
      manager: { pid: cluster.manager.pid, listen: manager.listen },
      nodes,
    },
  };
}

export async function upCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${UP_USAGE}\n`);
    return ExitCode.OK;
  }
  const flags = parseUpFlags(argv);
  const log = stderrLogger('up', flags.logLevel);
  const lockFd = lockDataDirectory(flags.dataDirectory);
  let stopRequested = false;
  let cluster: LocalCluster | undefined;
  // Every child's stderr also goes to DATA/logs/<name>.log (for support bundles).
  const logFiles = new LogFiles(path.join(path.resolve(flags.dataDirectory), 'logs'));
  // A closed terminal (SIGHUP) stops the cluster as Ctrl-C does, instead of orphaning it.
  const onHangup = () => process.kill(process.pid, 'SIGTERM');
  process.once('SIGHUP', onHangup);
  const stopped = untilSignal(async () => {
    stopRequested = true;
    log('info', 'stopping', {});
    await cluster?.stop();
  });
  try {
    const token = await adminToken(flags.dataDirectory);
    cluster = await LocalCluster.start({
      dataDirectory: flags.dataDirectory,
      nodeCount: flags.nodeCount,
      baseAddress: flags.baseAddress,
      ports: flags.ports,
      listen: flags.listen,
      settings: flags.settings,
      log,
      restart: true,
      onStderrLine: (name, line) => {
        logFiles.write(name, line);
        forwardLine(name, line);
      },
      managerLogLevel: flags.logLevel,
    });
    if (stopRequested) await cluster.stop();
    else {
      const { text, json } = summary(cluster, token);
      if (flags.output === 'json') announce(json);
      else process.stdout.write(text);
      const { adminToken: _shownOnce, ...logged } = json;
      log('info', 'cluster up', logged);
    }
    await stopped;
    log('info', 'every child stopped', {});
    return ExitCode.OK;
  } finally {
    process.off('SIGHUP', onHangup);
    logFiles.close();
    fsExtensions.unlock(lockFd);
    fs.closeSync(lockFd);
  }
}
