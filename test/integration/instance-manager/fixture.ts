import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { TestContext } from 'node:test';
import type { ClientReadableStream } from '@grpc/grpc-js';
import {
  type GrpcMessage,
  InstanceManagerClient,
} from '../../../src/dataplane/instance-manager/grpc-client.ts';
import { NbdTestClient } from '../../helpers/nbd-client.ts';
import { type HornbillProcess, startHornbill } from '../../helpers/processes.ts';
import { defer } from '../../helpers/temp.ts';

export const MiB = 1024 * 1024;

export interface RunningInstanceManager {
  process: HornbillProcess;
  client: InstanceManagerClient;
  address: string;
  grpcPort: number;
  iscsiPort: number;
  nbdPort: number;
  metricsPort: number;
  /** OS threads of the process now (Linux /proc). */
  threads(): number;
}

/** Starts `hornbill instance-manager` on `address` with free gRPC, iSCSI and NBD ports. */
export async function startInstanceManager(
  t: TestContext,
  options: {
    node: string;
    address: string;
    disk: string;
    replicaPorts?: string;
    env?: Record<string, string>;
  },
): Promise<RunningInstanceManager> {
  const args = [
    'instance-manager',
    '--node',
    options.node,
    '--address',
    options.address,
    '--grpc-port',
    '0',
    '--iscsi-port',
    '0',
    '--nbd-port',
    '0',
    '--metrics-port',
    '0',
    '--disk',
    options.disk,
    ...(options.replicaPorts === undefined ? [] : ['--replica-ports', options.replicaPorts]),
  ];
  // startHornbill passes this process's environment on: set the extra variables around the spawn.
  const saved = new Map(Object.keys(options.env ?? {}).map((key) => [key, process.env[key]]));
  Object.assign(process.env, options.env ?? {});
  let started: HornbillProcess;
  try {
    started = await startHornbill(t, args);
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  const ready = started.ready;
  assert.equal(ready.role, 'instance-manager');
  assert.equal(ready.grpc.host, options.address);
  const client = new InstanceManagerClient(`${options.address}:${ready.grpc.port}`, { deadlineMs: 120_000 });
  defer(t, () => client.close());
  const pid = started.child.pid!;
  return {
    process: started,
    client,
    address: options.address,
    grpcPort: ready.grpc.port,
    iscsiPort: ready.iscsi.port,
    nbdPort: ready.nbd.port,
    metricsPort: ready.metrics.port,
    threads: () => fs.readdirSync(`/proc/${pid}/task`).length,
  };
}

/** NbdTestClient.attach on `host`, destroyed when the test ends. */
export async function attachNbd(
  t: TestContext,
  host: string,
  port: number,
  name: string,
): Promise<NbdTestClient> {
  const { client } = await NbdTestClient.attach(port, name, { host });
  defer(t, () => client.destroy());
  return client;
}

/** Collects a server stream's messages until the test ends. */
export function collect(t: TestContext, stream: ClientReadableStream<GrpcMessage>): GrpcMessage[] {
  const messages: GrpcMessage[] = [];
  stream.on('data', (message: GrpcMessage) => messages.push(message));
  stream.on('error', () => {});
  defer(t, () => stream.cancel());
  return messages;
}

/** Polls `check` until it returns a value other than undefined (the wait is not a timing assertion). */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
