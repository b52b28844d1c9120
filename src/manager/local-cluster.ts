/**
 * A whole cluster on one machine, as `hornbill up` runs it and the e2e harness tests it:
 * N instance managers (node-K on consecutive loopback addresses, disk `DIR/node-K/disk`),
 * then one manager with its embedded store in `DIR/state`, told where each instance
 * manager listens. Stopping goes the other way: the manager first (no controller acts on a
 * node that is going away), then every instance manager.
 *
 * ```ts
 * const cluster = await LocalCluster.start({ dataDirectory: './hornbill-data', nodeCount: 3,
 *   baseAddress: '127.0.0.11', ports: { grpc: 8500, iscsi: 3260, nbd: 10809, metrics: 9502 },
 *   listen: { host: '127.0.0.1', port: 9500 }, log, restart: true });
 * console.log(cluster.manager.ready?.api);
 * await cluster.stop();
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging.ts';
import {
  endpointOf,
  instanceManagerProcess,
  type LaunchOptions,
  managerProcess,
  type NodeLaunchSpec,
  nodeAddresses,
} from './launch.ts';
import type { BackoffOptions, SupervisedProcess } from './supervisor.ts';

export interface LocalClusterOptions {
  dataDirectory: string;
  nodeCount: number;
  /** node-1's address; node-K gets base + K − 1 in the last octet. */
  baseAddress: string;
  /** The same port numbers on every node's address (0: picked at first start, then kept). */
  ports: { grpc: number; iscsi: number; nbd: number; metrics: number };
  listen: { host: string; port: number };
  settings?: Readonly<Record<string, string>>;
  namespace?: string;
  log: Logger;
  /** Restart children that die (hornbill up: true; the e2e harness: false). */
  restart: boolean;
  backoff?: BackoffOptions;
  /** Each stderr line of each child, with the child's name. */
  onStderrLine?: (name: string, line: string) => void;
  env?: NodeJS.ProcessEnv;
  managerLogLevel?: string;
  /** false: the manager runs without controllers (default true). */
  controllers?: boolean;
  /** Children in their own process group (default true: a terminal's Ctrl-C reaches only the parent). */
  detached?: boolean;
}

export interface LocalNode {
  spec: NodeLaunchSpec;
  process: SupervisedProcess;
}

/** The folders of a cluster's data directory. */
export function clusterLayout(dataDirectory: string, nodeCount: number) {
  const root = path.resolve(dataDirectory);
  return {
    root,
    state: path.join(root, 'state'),
    nodeDisks: Array.from({ length: nodeCount }, (_, index) => path.join(root, `node-${index + 1}`, 'disk')),
  };
}

export class LocalCluster {
  readonly nodes: LocalNode[];
  readonly manager: SupervisedProcess;
  readonly dataDirectory: string;
  private readonly log: Logger;
  private stopping: Promise<void> | undefined;

  private constructor(dataDirectory: string, nodes: LocalNode[], manager: SupervisedProcess, log: Logger) {
    this.dataDirectory = dataDirectory;
    this.nodes = nodes;
    this.manager = manager;
    this.log = log;
  }

  /** Starts the instance managers (together), then the manager; on a failure stops what started. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const layout = clusterLayout(options.dataDirectory, options.nodeCount);
    fs.mkdirSync(layout.state, { recursive: true });
    const addresses = nodeAddresses(options.baseAddress, options.nodeCount);
    const launchOptions = (name: string): LaunchOptions => ({
      log: options.log,
      restart: options.restart,
      backoff: options.backoff,
      env: options.env,
      detached: options.detached,
      onStderrLine:
        options.onStderrLine === undefined ? undefined : (line) => options.onStderrLine?.(name, line),
    });
    const nodes: LocalNode[] = addresses.map((address, index) => {
      const spec: NodeLaunchSpec = {
        name: `node-${index + 1}`,
        address,
        disk: layout.nodeDisks[index],
        grpcPort: options.ports.grpc,
        iscsiPort: options.ports.iscsi,
        nbdPort: options.ports.nbd,
        metricsPort: options.ports.metrics,
      };
      return { spec, process: instanceManagerProcess(spec, launchOptions(spec.name)) };
    });
    const started: SupervisedProcess[] = [];
    try {
      const readies = await Promise.all(
        nodes.map(async (node) => {
          const ready = await node.process.start();
          started.push(node.process);
          return ready;
        }),
      );
      const manager = managerProcess(
        {
          storeDirectory: layout.state,
          listen: options.listen,
          instanceManagers: nodes.map((node, index) => endpointOf(node.spec, readies[index])),
          settings: options.settings,
          namespace: options.namespace,
          logLevel: options.managerLogLevel,
          controllers: options.controllers,
        },
        launchOptions('manager'),
      );
      started.push(manager);
      await manager.start();
      return new LocalCluster(layout.root, nodes, manager, options.log);
    } catch (error) {
      await Promise.all(nodes.map((node) => node.process.stop('SIGTERM', 10_000)));
      throw error;
    }
  }

  /** The manager (SIGTERM, SIGKILL after 15 s), then every instance manager (SIGKILL after 20 s). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log('info', 'stopping the manager', {});
      await this.manager.stop('SIGTERM', 15_000);
      this.log('info', 'stopping the instance managers', { nodes: this.nodes.map((node) => node.spec.name) });
      await Promise.all(this.nodes.map((node) => node.process.stop('SIGTERM', 20_000)));
    })();
    return this.stopping;
  }
}
