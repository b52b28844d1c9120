/**
 * The worker thread of one replica instance: opens (or creates) the replica folder, serves
 * it with a ReplicaServer on the node address, and reports to the instance manager through
 * its parent port. Everything of the replica — store, index, sockets, timers — lives in
 * this thread; when the thread dies, Node closes the file descriptors it opened (the store
 * lock included), so the instance can be started again in a new thread and recovers from
 * the folder like after a crash.
 */
import fs from 'node:fs';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { HornbillError, isHornbillError, type WireError } from '../../errors.ts';
import type { Logger, LogLevel } from '../../logging.ts';
import { ReplicaStore, type WriteRequest } from '../../storage/replica-store.ts';
import { ReplicaServer } from '../replica/replica-server.ts';
import { serveLane } from '../workers/lane-server.ts';
import type { LaneReport, ServeLaneCommand } from '../workers/lane-thread.ts';
import { boundedDetails } from './log-history.ts';

export interface ReplicaThreadData {
  name: string;
  directory: string;
  sizeBytes: number;
  host: string;
  /** 0: a free port. */
  port: number;
  /** Test-only: after a write touching `offsetBytes`, throw an uncaught exception (crash) or spin forever (hang). */
  failpoint?: ReplicaFailpoint;
}

export interface ReplicaFailpoint {
  kind: 'crash' | 'hang';
  offsetBytes: number;
}

export type ReplicaThreadMessage =
  | {
      type: 'ready';
      host: string;
      port: number;
      sizeBytes: number;
      revisionCounter: number;
      created: boolean;
    }
  | { type: 'failed'; error: WireError }
  | { type: 'log'; level: LogLevel; message: string; details: Record<string, unknown> }
  /** hostedLanes: engine lanes this thread still serves (it exits once they end). */
  | { type: 'stopped'; hostedLanes: number }
  | { type: 'pong' }
  | LaneReport;

export type ReplicaThreadCommand = { type: 'stop' } | { type: 'ping' } | ServeLaneCommand;

if (parentPort === null) throw new Error('replica-thread.ts runs as a worker thread');
const port: MessagePort = parentPort;
const data = workerData as ReplicaThreadData;
const post = (message: ReplicaThreadMessage) => port.postMessage(message);
const log: Logger = (level, message, details) =>
  post({ type: 'log', level, message, details: boundedDetails(details) });

let server: ReplicaServer | undefined;
let store: ReplicaStore | undefined;

try {
  const created = !fs.existsSync(data.directory) || fs.readdirSync(data.directory).length === 0;
  store = created
    ? ReplicaStore.create(data.directory, { sizeBytes: data.sizeBytes })
    : ReplicaStore.open(data.directory);
  if (store.sizeBytes < data.sizeBytes) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `replica folder ${data.directory} holds ${store.sizeBytes} bytes, less than the ${data.sizeBytes} asked for`,
      { directory: data.directory, heldBytes: store.sizeBytes, sizeBytes: data.sizeBytes },
    );
  }
  if (data.failpoint !== undefined) armFailpoint(store, data.failpoint);
  // inThread: an engine whose lane this thread hosts (below) reaches this replica in memory.
  server = new ReplicaServer({ store, host: data.host, port: data.port, log, inThread: true });
  const address = await server.listen();
  log('info', created ? 'replica created and serving' : 'replica opened and serving', {
    directory: data.directory,
    ...address,
    sizeBytes: store.sizeBytes,
    revisionCounter: store.revisionCounter,
  });
  post({
    type: 'ready',
    ...address,
    sizeBytes: store.sizeBytes,
    revisionCounter: store.revisionCounter,
    created,
  });
  port.on('message', (command: ReplicaThreadCommand) => {
    if (command.type === 'stop') void stop();
    else if (command.type === 'ping') post({ type: 'pong' });
    else if (command.type === 'serve-lane') hostLane(command);
  });
} catch (error) {
  await server?.close().catch(() => {});
  if (store !== undefined && !store.isClosed) store.close();
  post({ type: 'failed', error: toWireError(error) });
  port.close();
}

let hostedLanes = 0;
let stopped = false;

/**
 * Serves an engine's lane (its I/O rings) in this thread, next to the replica: the engine
 * then reaches this replica through the in-thread link, without a socket. The lane ends
 * when the engine closes it; the thread ends once the replica is stopped and no lane is left.
 */
function hostLane(command: ServeLaneCommand): void {
  hostedLanes++;
  const report = (event: LaneReport['event']) => post({ type: 'lane', laneId: command.laneId, event });
  serveLane(command.data, report).then(
    () => laneEnded(report, undefined),
    (error: unknown) => laneEnded(report, (error as Error)?.stack ?? String(error)),
  );
}

function laneEnded(report: (event: LaneReport['event']) => void, error: string | undefined): void {
  hostedLanes--;
  if (error !== undefined) log('error', 'a hosted engine lane failed', { error });
  report(error === undefined ? { type: 'ended' } : { type: 'ended', error });
  if (stopped && hostedLanes === 0) port.close();
}

async function stop(): Promise<void> {
  await server?.close();
  if (store !== undefined && !store.isClosed) store.close();
  log('info', 'replica stopped', { directory: data.directory, hostedLanes });
  post({ type: 'stopped', hostedLanes });
  stopped = true;
  // A hosted engine lane goes on (without this replica) until its engine stops.
  if (hostedLanes === 0) port.close();
}

function toWireError(error: unknown): WireError {
  if (isHornbillError(error)) return error.toWire();
  return { code: 'INTERNAL', message: (error as Error)?.message ?? String(error), details: {} };
}

/**
 * The failpoints: once a write that covers `offsetBytes` has been applied, an exception
 * nobody catches ends this thread (as a bug in the replica's code would), or the thread
 * spins forever (as a livelock would; only its heartbeat shows it).
 */
function armFailpoint(target: ReplicaStore, failpoint: ReplicaFailpoint): void {
  const { kind, offsetBytes } = failpoint;
  const covers = (offset: number, length: number) => offset <= offsetBytes && offsetBytes < offset + length;
  const fire = () =>
    process.nextTick(() => {
      if (kind === 'hang') for (;;);
      throw new Error(`failpoint replica-crash-on-write fired at offset ${offsetBytes}`);
    });
  const write = target.write.bind(target);
  const writeBatch = target.writeBatch.bind(target);
  target.write = (offset: number, source: Uint8Array, options?: Parameters<ReplicaStore['write']>[2]) => {
    write(offset, source, options);
    if (covers(offset, source.length)) fire();
  };
  target.writeBatch = (requests: readonly WriteRequest[]) => {
    writeBatch(requests);
    if (requests.some((request) => covers(request.offsetBytes, request.data.length))) fire();
  };
}
