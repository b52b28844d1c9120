/**
 * How a cluster on one machine is launched: the command lines of `hornbill instance-manager`
 * and `hornbill manager` as supervised children. `hornbill up` and the e2e harness
 * (test/e2e/helpers/cluster.ts) both build their processes here, so that tests run exactly
 * what an operator runs.
 *
 * Ports given as 0 are picked by the child at its first start and then pinned from its
 * ready line, so that a restarted child answers where the others already look for it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging.ts';
import type { InstanceManagerEndpoint } from './manager.ts';
import { type BackoffOptions, type ReadyLine, SupervisedProcess } from './supervisor.ts';

export const HORNBILL_BIN = path.join(import.meta.dirname, '..', '..', 'bin', 'hornbill.mjs');

export interface NodeLaunchSpec {
  /** node-1 … */
  name: string;
  /** The node's loopback address, 127.0.0.11 … */
  address: string;
  /** The node's one disk folder (created if missing). */
  disk: string;
  grpcPort: number;
  iscsiPort: number;
  nbdPort: number;
  /** Its Prometheus /metrics port. */
  metricsPort: number;
  /** FIRST-LAST; any free port when absent. */
  replicaPorts?: string;
}

export interface ManagerLaunchSpec {
  storeDirectory: string;
  listen: { host: string; port: number };
  instanceManagers: readonly InstanceManagerEndpoint[];
  settings?: Readonly<Record<string, string>>;
  namespace?: string;
  logLevel?: string;
  /** false: --no-controllers (the store and API alone). */
  controllers?: boolean;
}

export interface LaunchOptions {
  log: Logger;
  restart: boolean;
  backoff?: BackoffOptions;
  onStderrLine?: (line: string) => void;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  detached?: boolean;
}

/** node-K of `count` nodes on consecutive addresses from `baseAddress` (127.0.0.11 → .11, .12, …). */
export function nodeAddresses(baseAddress: string, count: number): string[] {
  const parts = baseAddress.split('.').map(Number);
  if (parts.length !== 4 || parts.some((part) => !Number.isInteger(part) || part < 0 || part > 255))
    throw new Error(`not an IPv4 address: ${baseAddress}`);
  if (parts[3] + count - 1 > 254) throw new Error(`${count} nodes from ${baseAddress} run past .254`);
  return Array.from({ length: count }, (_, index) =>
    [parts[0], parts[1], parts[2], parts[3] + index].join('.'),
  );
}

/** `hornbill instance-manager` for one node; ports picked at the first start stay for restarts. */
export function instanceManagerProcess(spec: NodeLaunchSpec, options: LaunchOptions): SupervisedProcess {
  const ports = { grpc: spec.grpcPort, iscsi: spec.iscsiPort, nbd: spec.nbdPort, metrics: spec.metricsPort };
  fs.mkdirSync(spec.disk, { recursive: true });
  return new SupervisedProcess({
    name: spec.name,
    command: process.execPath,
    args: () => [
      HORNBILL_BIN,
      'instance-manager',
      '--node',
      spec.name,
      '--address',
      spec.address,
      '--disk',
      spec.disk,
      '--grpc-port',
      String(ports.grpc),
      '--iscsi-port',
      String(ports.iscsi),
      '--nbd-port',
      String(ports.nbd),
      '--metrics-port',
      String(ports.metrics),
      ...(spec.replicaPorts === undefined ? [] : ['--replica-ports', spec.replicaPorts]),
    ],
    env: options.env,
    detached: options.detached,
    log: options.log,
    restart: options.restart,
    backoff: options.backoff,
    readyTimeoutMs: options.readyTimeoutMs,
    stopTimeoutMs: options.stopTimeoutMs,
    onStderrLine: options.onStderrLine,
    onReady: (ready: ReadyLine) => {
      ports.grpc = Number(ready.grpc?.port ?? ports.grpc);
      ports.iscsi = Number(ready.iscsi?.port ?? ports.iscsi);
      ports.nbd = Number(ready.nbd?.port ?? ports.nbd);
      ports.metrics = Number(ready.metrics?.port ?? ports.metrics);
    },
  });
}

/** What the manager is told about a node whose instance manager printed `ready`. */
export function endpointOf(spec: NodeLaunchSpec, ready: ReadyLine): InstanceManagerEndpoint {
  return {
    nodeID: spec.name,
    grpcAddress: `${ready.grpc.host}:${ready.grpc.port}`,
    address: spec.address,
    disks: [path.resolve(spec.disk)],
  };
}

/**
 * `hornbill manager` over the embedded store; a listen port 0 is pinned after the first
 * start. The settings are passed to the first start only: a restarted manager keeps what
 * was changed through the API since.
 */
export function managerProcess(spec: ManagerLaunchSpec, options: LaunchOptions): SupervisedProcess {
  const listen = { ...spec.listen };
  let settings = spec.settings ?? {};
  return new SupervisedProcess({
    name: 'manager',
    command: process.execPath,
    args: () => [
      HORNBILL_BIN,
      'manager',
      '--store',
      `embedded:${spec.storeDirectory}`,
      '--listen',
      `${listen.host}:${listen.port}`,
      ...(spec.namespace === undefined ? [] : ['--namespace', spec.namespace]),
      ...(spec.logLevel === undefined ? [] : ['--log-level', spec.logLevel]),
      ...(spec.controllers === false ? ['--no-controllers'] : []),
      ...spec.instanceManagers.flatMap((endpoint) => [
        '--instance-manager',
        [
          `${endpoint.nodeID}=${endpoint.grpcAddress}`,
          ...endpoint.disks.map((disk) => `disk=${disk}`),
          `address=${endpoint.address}`,
        ].join(','),
      ]),
      ...Object.entries(settings).flatMap(([name, value]) => ['--setting', `${name}=${value}`]),
    ],
    env: options.env,
    detached: options.detached,
    log: options.log,
    restart: options.restart,
    backoff: options.backoff,
    readyTimeoutMs: options.readyTimeoutMs,
    stopTimeoutMs: options.stopTimeoutMs,
    onStderrLine: options.onStderrLine,
    onReady: (ready: ReadyLine) => {
      settings = {};
      listen.port = Number(ready.listen?.port ?? listen.port);
    },
  });
}
