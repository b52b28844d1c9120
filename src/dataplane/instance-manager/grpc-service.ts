import {
  type handleServerStreamingCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { checkDecoded, tolerantDefinition } from './grpc-decoding.ts';
import { toServiceError } from './grpc-errors.ts';
import {
  diskMessage,
  engineStatusMessage,
  infoMessage,
  instanceMessage,
  logRecordMessage,
  purgeMessage,
  replicaInfoMessage,
  shareManagerMessage,
  snapshotMessage,
} from './grpc-messages.ts';
import { instanceManagerService } from './grpc-proto.ts';
import type { InstanceManager } from './instance-manager.ts';
import { shareManagerSpecInput } from './share-manager-spec.ts';
import type { InstanceEvent, InstanceLogRecord } from './types.ts';
import { instanceName, kindFilter } from './validation.ts';

/** Largest request accepted (names are short; nothing sends bulk data over this API). */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Events queued for one watcher that is not reading; beyond, its stream ends RESOURCE_EXHAUSTED. */
export const WATCH_QUEUE_MAX = 4096;

// biome-ignore lint/suspicious/noExplicitAny: requests are whatever the proto loader decoded; validation.ts checks them
type Request = Record<string, any>;

/** Marks a request whose bytes did not decode (set by the wrapped deserializer). */

export interface GrpcServerOptions {
  host: string;
  /** 0: a free port. */
  port: number;
  log: Logger;
  /** Open WatchInstances streams at most (default 64). */
  maxWatchStreams?: number;
  /** Open StreamLogs streams at most (default 256). */
  maxLogStreams?: number;
}

/**
 * The gRPC face of an InstanceManager (proto/instance-manager.proto). Each handler decodes
 * nothing itself: the proto loader decodes (a request whose bytes do not decode is
 * INVALID_ARGUMENT, not grpc-js's INTERNAL), the manager validates and acts, and errors
 * become statuses with the Hornbill code in the trailing metadata (grpc-errors.ts).
 */
export class InstanceManagerGrpcServer {
  readonly host: string;
  port = 0;
  /** Calls per method and answers per status name, since start (for metrics). */
  readonly counters = { calls: {} as Record<string, number>, statuses: {} as Record<string, number> };
  private readonly server: Server;
  private readonly manager: InstanceManager;
  private readonly options: GrpcServerOptions;
  private readonly openStreams = { watch: new Set<() => void>(), logs: new Set<() => void>() };

  private constructor(manager: InstanceManager, options: GrpcServerOptions) {
    this.manager = manager;
    this.options = options;
    this.host = options.host;
    this.server = new Server({
      'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.server.addService(tolerantDefinition(instanceManagerService().service), this.implementation());
  }

  static async start(
    manager: InstanceManager,
    options: GrpcServerOptions,
  ): Promise<InstanceManagerGrpcServer> {
    const server = new InstanceManagerGrpcServer(manager, options);
    server.port = await new Promise<number>((resolve, reject) =>
      server.server.bindAsync(
        `${options.host}:${options.port}`,
        ServerCredentials.createInsecure(),
        (error, port) =>
          error === null
            ? resolve(port)
            : reject(
                new HornbillError(
                  'INSTANCE_MANAGER_LISTEN_FAILED',
                  `gRPC cannot listen on ${options.host}:${options.port}: ${error.message}`,
                  {
                    host: options.host,
                    port: options.port,
                  },
                ),
              ),
      ),
    );
    return server;
  }

  get streamCounts(): { watch: number; logs: number } {
    return { watch: this.openStreams.watch.size, logs: this.openStreams.logs.size };
  }

  /** Ends open streams, lets unary calls finish for `graceMs`, then cuts the rest. */
  async close(graceMs = 5000): Promise<void> {
    for (const end of [...this.openStreams.watch, ...this.openStreams.logs]) end();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private implementation(): UntypedServiceImplementation {
    const manager = this.manager;
    const unary = this.unary.bind(this);
    const views = instanceMessage;
    return {
      GetInfo: unary('GetInfo', () => {
        const info = manager.info();
        return infoMessage(
          { ...info, counters: { ...info.counters, ...this.flatCounters() } },
          { host: this.host, port: this.port },
        );
      }),
      CreateReplica: unary('CreateReplica', async (request) =>
        views(
          await manager.createReplica({
            name: request.name,
            volumeName: request.volume_name,
            sizeBytes: request.size_bytes,
            diskPath: request.disk_path,
            dataDirectoryName: request.data_directory_name,
          }),
        ),
      ),
      StartReplica: unary('StartReplica', async (request) => views(await manager.startReplica(request.name))),
      StopReplica: unary('StopReplica', async (request) => views(await manager.stopReplica(request.name))),
      DeleteReplica: unary('DeleteReplica', async (request) => {
        const result = await manager.deleteReplica({
          name: request.name,
          removeData: request.remove_data === true,
          diskPath: request.disk_path,
          dataDirectoryName: request.data_directory_name,
        });
        return { found: result.found, data_removed: result.dataRemoved };
      }),
      GetReplicaInfo: unary('GetReplicaInfo', async (request) =>
        replicaInfoMessage(request.name, await manager.replicaInfo(request.name)),
      ),
      CreateEngine: unary('CreateEngine', async (request) =>
        views(
          await manager.createEngine({
            name: request.name,
            volumeName: request.volume_name,
            sizeBytes: request.size_bytes,
            replicaAddresses: request.replica_addresses,
            frontend: request.frontend,
            workers: request.workers,
            replicaTimeoutMs: request.replica_timeout_ms,
            preferLocalReplica: request.prefer_local_replica,
            inLocalReplicaThread: request.in_local_replica_thread,
          }),
        ),
      ),
      StartEngine: unary('StartEngine', async (request) => views(await manager.startEngine(request.name))),
      StopEngine: unary('StopEngine', async (request) => views(await manager.stopEngine(request.name))),
      DeleteEngine: unary('DeleteEngine', async (request) => {
        const result = await manager.deleteEngine(request.name);
        return { found: result.found, data_removed: false };
      }),
      GetInstance: unary('GetInstance', (request) => views(manager.get(request.name))),
      ListInstances: unary('ListInstances', (request) => ({
        instances: manager.list(request.kind).map(instanceMessage),
      })),
      WatchInstances: this.stream('WatchInstances', (call) => this.watch(call)),
      StreamLogs: this.stream('StreamLogs', (call) => this.streamLogs(call)),
      GetEngineStatus: unary('GetEngineStatus', async (request) =>
        engineStatusMessage(await manager.engineStatus(request.name)),
      ),
      CreateSnapshot: unary('CreateSnapshot', async (request) =>
        snapshotMessage(await manager.createSnapshot(request.name, request.snapshot_name, request.labels)),
      ),
      DeleteSnapshot: unary('DeleteSnapshot', async (request) => {
        await manager.deleteSnapshot(request.name, request.snapshot_name);
        return engineStatusMessage(await manager.engineStatus(request.name));
      }),
      ListSnapshots: unary('ListSnapshots', async (request) => ({
        snapshots: (await manager.listSnapshots(request.name)).map(snapshotMessage),
      })),
      HashSnapshot: unary('HashSnapshot', async (request) => ({
        hash: await manager.hashSnapshot(request.name, request.snapshot_name),
      })),
      RevertSnapshot: unary('RevertSnapshot', async (request) => {
        await manager.revertSnapshot(request.name, request.snapshot_name);
        return engineStatusMessage(await manager.engineStatus(request.name));
      }),
      PurgeSnapshots: unary('PurgeSnapshots', async (request) =>
        purgeMessage(await manager.purgeSnapshots(request.name)),
      ),
      ExpandEngine: unary('ExpandEngine', async (request) => {
        await manager.expandEngine(request.name, request.size_bytes);
        return engineStatusMessage(await manager.engineStatus(request.name));
      }),
      AddReplica: unary('AddReplica', async (request) => {
        await manager.addReplica(request.name, {
          address: request.address,
          bandwidthBytesPerSecond: request.bandwidth_bytes_per_second,
          wait: request.wait_for_rebuild === true,
        });
        return engineStatusMessage(await manager.engineStatus(request.name));
      }),
      CloneSnapshot: unary('CloneSnapshot', async (request) => {
        await manager.cloneSnapshot(request.name, {
          sources: request.source_replica_addresses,
          snapshot: request.snapshot_name,
          origin: request.origin ?? '',
          bandwidthBytesPerSecond: request.bandwidth_bytes_per_second,
        });
        return engineStatusMessage(await manager.engineStatus(request.name));
      }),
      RemoveReplica: unary('RemoveReplica', async (request) => {
        await manager.removeReplica(request.name, request.address);
        return engineStatusMessage(await manager.engineStatus(request.name));
      }),
      DiskStats: unary('DiskStats', async (request) => ({
        disks: (await manager.diskStats(request.disk_paths ?? [])).map(diskMessage),
      })),
      ...this.shareManagerHandlers(),
    };
  }

  /** The share manager calls (share-manager-host.ts). */
  private shareManagerHandlers(): UntypedServiceImplementation {
    const unary = this.unary.bind(this);
    const shareManagers = this.manager.shareManagers;
    return {
      CreateShareManager: unary('CreateShareManager', async (request) =>
        shareManagerMessage(await shareManagers.create(shareManagerSpecInput(request))),
      ),
      StartShareManager: unary('StartShareManager', async (request) =>
        shareManagerMessage(await shareManagers.start(request.name)),
      ),
      StopShareManager: unary('StopShareManager', async (request) =>
        shareManagerMessage(await shareManagers.stop(request.name)),
      ),
      DeleteShareManager: unary('DeleteShareManager', async (request) => {
        const result = await shareManagers.delete(
          request.name,
          request.remove_data === true,
          request.volume_name,
        );
        return { found: result.found, data_removed: result.dataRemoved };
      }),
      GetShareManager: unary('GetShareManager', (request) =>
        shareManagerMessage(shareManagers.get(request.name)),
      ),
      ListShareManagers: unary('ListShareManagers', () => ({
        share_managers: shareManagers.list().map(shareManagerMessage),
        can_attach_devices: shareManagers.canAttachDevices,
      })),
    };
  }

  private unary(method: string, handle: (request: Request) => unknown) {
    return (call: ServerUnaryCall<Request, unknown>, callback: sendUnaryData<unknown>) => {
      this.count('calls', method);
      Promise.resolve()
        .then(() => handle(checkDecoded(call.request)))
        .then(
          (response) => {
            this.count('statuses', 'OK');
            callback(null, response);
          },
          (error) => callback(this.failure(method, error)),
        );
    };
  }

  private stream(
    method: string,
    handle: (call: ServerWritableStream<Request, unknown>) => void,
  ): handleServerStreamingCall<Request, unknown> {
    return (call) => {
      this.count('calls', method);
      try {
        checkDecoded(call.request);
        handle(call);
      } catch (error) {
        call.emit('error', this.failure(method, error));
      }
    };
  }

  /** The status for a failed call; never throws (a throw here would end the process). */
  private failure(method: string, error: unknown) {
    let failure: ReturnType<typeof toServiceError>;
    try {
      failure = toServiceError(error);
    } catch (conversion) {
      failure = { code: status.INTERNAL, details: `the error could not be sent: ${String(conversion)}` };
    }
    this.count('statuses', status[failure.code] ?? String(failure.code));
    if (!isHornbillError(error) || error.code === 'INTERNAL')
      this.options.log('error', 'instance manager call failed unexpectedly', {
        method,
        error: (error as Error)?.stack ?? String(error),
      });
    return failure;
  }

  /** Sends the current instances, then every change, until the client goes or the server closes. */
  private watch(call: ServerWritableStream<Request, unknown>): void {
    const kind = kindFilter(call.request.kind);
    this.checkStreamLimit('watch', this.options.maxWatchStreams ?? 64);
    const writer = boundedWriter(call, WATCH_QUEUE_MAX, () =>
      call.emit(
        'error',
        toServiceError(
          new HornbillError(
            'INSTANCE_LIMIT_REACHED',
            `the watcher fell ${WATCH_QUEUE_MAX} events behind; watch again`,
          ),
        ),
      ),
    );
    const send = (event: InstanceEvent) => {
      if (kind === undefined || event.instance.kind === kind)
        writer.write({ type: event.type, instance: instanceMessage(event.instance) });
    };
    const { initial, unsubscribe } = this.manager.watch(send);
    for (const instance of initial) send({ type: 'initial', instance });
    this.track('watch', call, unsubscribe);
  }

  /** Sends the kept history (or its tail), then, with follow, new records until the instance goes. */
  private streamLogs(call: ServerWritableStream<Request, unknown>): void {
    const name = instanceName(call.request.name);
    const history = this.manager.logs(name);
    const tail = Number.isSafeInteger(call.request.tail) && call.request.tail > 0 ? call.request.tail : 0;
    if (call.request.follow === true) this.checkStreamLimit('logs', this.options.maxLogStreams ?? 256);
    const writer = boundedWriter(call, history.capacity, () =>
      call.emit(
        'error',
        toServiceError(
          new HornbillError('INSTANCE_LIMIT_REACHED', 'the log reader fell behind; stream again'),
        ),
      ),
    );
    for (const record of history.tail(tail)) writer.write(logRecordMessage(record));
    if (call.request.follow !== true) {
      call.end();
      return;
    }
    const unfollow = history.follow((record: InstanceLogRecord | undefined) => {
      if (record === undefined) call.end();
      else writer.write(logRecordMessage(record));
    });
    this.track('logs', call, unfollow);
  }

  private checkStreamLimit(kind: 'watch' | 'logs', limit: number): void {
    if (this.openStreams[kind].size >= limit)
      throw new HornbillError('INSTANCE_LIMIT_REACHED', `${limit} ${kind} streams are open already`, {
        limit,
      });
  }

  /** Keeps a stream in the open set until it ends, and ends it when the server closes. */
  private track(
    kind: 'watch' | 'logs',
    call: ServerWritableStream<Request, unknown>,
    release: () => void,
  ): void {
    const streams = this.openStreams[kind];
    const end = () => {
      if (!streams.delete(end)) return;
      release();
      if (!call.writableEnded) call.end();
    };
    streams.add(end);
    call.on('cancelled', end);
    call.on('close', end);
    call.on('finish', end);
    call.on('error', end);
  }

  private count(kind: 'calls' | 'statuses', key: string): void {
    this.counters[kind][key] = (this.counters[kind][key] ?? 0) + 1;
  }

  private flatCounters(): Record<string, number> {
    const flat: Record<string, number> = {};
    for (const [method, count] of Object.entries(this.counters.calls)) flat[`grpcCalls.${method}`] = count;
    for (const [name, count] of Object.entries(this.counters.statuses)) flat[`grpcStatus.${name}`] = count;
    return flat;
  }
}

/**
 * Writes to a server stream, holding messages while the client reads slowly; more than
 * `limit` held calls `overflow` (which ends the stream) instead of growing without bound.
 */
function boundedWriter(call: ServerWritableStream<Request, unknown>, limit: number, overflow: () => void) {
  const held: unknown[] = [];
  let waiting = false;
  let failed = false;
  const pump = () => {
    while (held.length > 0 && !waiting && !call.writableEnded) {
      if (!call.write(held.shift())) {
        waiting = true;
        call.once('drain', () => {
          waiting = false;
          pump();
        });
      }
    }
  };
  return {
    write(message: unknown) {
      if (failed || call.writableEnded || call.cancelled) return;
      if (held.length >= limit) {
        failed = true;
        held.length = 0;
        overflow();
        return;
      }
      held.push(message);
      pump();
    },
  };
}
