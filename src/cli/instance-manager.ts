import path from 'node:path';
import { LinuxHostOperations } from '../csi/host/linux.ts';
import { tapEngineLogs } from '../dataplane/instance-manager/engine-log-tap.ts';
import { InstanceManagerGrpcServer } from '../dataplane/instance-manager/grpc-service.ts';
import { InstanceManager } from '../dataplane/instance-manager/instance-manager.ts';
import { type PortRange, parsePortRange } from '../dataplane/instance-manager/port-allocator.ts';
import { HornbillError } from '../errors.ts';
import { stderrLogger } from '../logging.ts';
import { type MetricsServer, startMetricsServer } from '../metrics/http.ts';
import { instanceManagerRegistry } from '../metrics/instance-manager-metrics.ts';
import { announce, parseFlags, requireFlag, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const INSTANCE_MANAGER_USAGE = `Usage:
  hornbill instance-manager --node NAME --address IP --disk DIR [--disk DIR …]
                            [--grpc-port 8500] [--iscsi-port 3260] [--nbd-port 10809]
                            [--replica-ports 10000-10999] [--workers 0|1] [--metrics-port 9502]
                            [--attach-devices]
      Runs the engines and replicas of one node and offers them to the control plane over
      gRPC (proto/instance-manager.proto, docs/instance-manager.md). Every server listens
      on --address: gRPC on --grpc-port, one iSCSI portal on --iscsi-port, one NBD server on
      --nbd-port, each replica on a port of --replica-ports (without it: any free port).
      Replica folders live in DIR/replicas/. --workers is the engines' default (1: each
      engine in its own worker thread). Prometheus metrics on --metrics-port (/metrics,
      docs/metrics.md). --attach-devices lets RWX share managers log in to their volume's
      iSCSI target and mount it (needs iscsiadm and mount rights; without it they export a
      plain folder, docs/rwx.md). Port 0 picks a free port. Prints one JSON line on
      stdout when ready, logs to stderr, stops every instance cleanly on SIGTERM.`;

export interface InstanceManagerFlags {
  nodeName: string;
  address: string;
  disks: string[];
  grpcPort: number;
  iscsiPort: number;
  nbdPort: number;
  replicaPorts: PortRange | undefined;
  workers: 0 | 1;
  metricsPort: number;
  attachDevices: boolean;
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function usage(message: string): HornbillError {
  return new HornbillError('CLI_USAGE', `${message}\n${INSTANCE_MANAGER_USAGE}`);
}

function portFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535)
    throw usage(`${flag} must be a port 0-65535, not ${JSON.stringify(value)}`);
  return Number(value);
}

/** The command line, checked: every problem is CLI_USAGE naming the flag. */
export function parseInstanceManagerFlags(argv: string[]): InstanceManagerFlags {
  const { values } = parseFlags(
    argv,
    {
      node: { type: 'string' },
      address: { type: 'string' },
      disk: { type: 'string', multiple: true },
      'grpc-port': { type: 'string' },
      'iscsi-port': { type: 'string' },
      'nbd-port': { type: 'string' },
      'replica-ports': { type: 'string' },
      workers: { type: 'string' },
      'metrics-port': { type: 'string' },
      'attach-devices': { type: 'boolean' },
    },
    INSTANCE_MANAGER_USAGE,
  );
  const nodeName = requireFlag(values.node, '--node', INSTANCE_MANAGER_USAGE);
  if (nodeName.length > 253 || !NODE_NAME.test(nodeName))
    throw usage(`--node must be a DNS-1123 subdomain, not ${JSON.stringify(nodeName)}`);
  const address = requireFlag(values.address, '--address', INSTANCE_MANAGER_USAGE);
  if (!IPV4.test(address)) throw usage(`--address must be an IPv4 address, not ${JSON.stringify(address)}`);
  const disks = (values.disk ?? []).map((disk) => path.resolve(disk));
  if (disks.length === 0) throw usage('at least one --disk is required');
  if (new Set(disks).size !== disks.length) throw usage('a --disk is given twice');
  let replicaPorts: PortRange | undefined;
  if (values['replica-ports'] !== undefined) {
    try {
      replicaPorts = parsePortRange(values['replica-ports']);
    } catch (error) {
      throw usage(`--replica-ports: ${(error as Error).message}`);
    }
  }
  const workers = values.workers ?? '1';
  if (workers !== '0' && workers !== '1')
    throw usage(`--workers must be 0 or 1, not ${JSON.stringify(workers)}`);
  return {
    nodeName,
    address,
    disks,
    grpcPort: portFlag(values['grpc-port'], '--grpc-port', 8500),
    iscsiPort: portFlag(values['iscsi-port'], '--iscsi-port', 3260),
    nbdPort: portFlag(values['nbd-port'], '--nbd-port', 10809),
    replicaPorts,
    workers: workers === '0' ? 0 : 1,
    metricsPort: portFlag(values['metrics-port'], '--metrics-port', 9502),
    attachDevices: values['attach-devices'] === true,
  };
}

export async function instanceManagerCommand(argv: string[]): Promise<number> {
  const flags = parseInstanceManagerFlags(argv);
  const log = stderrLogger('instance-manager');
  const manager = await InstanceManager.start({
    nodeName: flags.nodeName,
    address: flags.address,
    disks: flags.disks,
    replicaPorts: flags.replicaPorts,
    iscsiPort: flags.iscsiPort,
    nbdPort: flags.nbdPort,
    defaultWorkers: flags.workers,
    ...(flags.attachDevices ? { shareManagerDeviceHost: new LinuxHostOperations() } : {}),
    log,
    failpoint: process.env.HORNBILL_INSTANCE_FAILPOINT,
  });
  const tap = tapEngineLogs(process.stderr, (record) => manager.ingestEngineRecord(record));
  let grpc: InstanceManagerGrpcServer;
  let metrics: MetricsServer;
  try {
    grpc = await InstanceManagerGrpcServer.start(manager, { host: flags.address, port: flags.grpcPort, log });
  } catch (error) {
    tap.remove();
    await manager.close();
    throw error;
  }
  try {
    metrics = await startMetricsServer({
      host: flags.address,
      port: flags.metricsPort,
      registry: instanceManagerRegistry(manager),
      log,
    });
  } catch (error) {
    await grpc.close();
    tap.remove();
    await manager.close();
    throw error;
  }
  const info = manager.info();
  log('info', 'instance manager serving', {
    node: flags.nodeName,
    grpc: { host: flags.address, port: grpc.port },
    iscsi: info.iscsi,
    nbd: info.nbd,
    disks: info.diskPaths,
    replicaPorts: info.replicaPorts ?? 'any',
    metrics: `http://${flags.address}:${metrics.port}/metrics`,
  });
  announce({
    role: 'instance-manager',
    node: flags.nodeName,
    address: flags.address,
    grpc: { host: flags.address, port: grpc.port },
    iscsi: info.iscsi,
    nbd: info.nbd,
    disks: info.diskPaths,
    replicaPorts: info.replicaPorts ?? null,
    metrics: { host: flags.address, port: metrics.port },
  });
  await untilSignal(async () => {
    await metrics.close();
    await grpc.close();
    await manager.close();
    tap.remove();
  });
  return ExitCode.OK;
}
