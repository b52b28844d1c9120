/**
 * The CSI plugin's gRPC server on a unix socket: Identity always, Controller and/or Node by
 * mode. Each call is counted, its request decoded tolerantly (bytes that do not decode are
 * INVALID_ARGUMENT, not grpc-js's INTERNAL), handled, and failures answered with the CSI
 * status of their Hornbill code (grpc-errors.ts) — never a crash of the process.
 *
 * ```ts
 * const server = await startCsiServer({ endpoint: 'unix:///csi/csi.sock', mode: 'all', nodeId: 'node-1',
 *   namespace: 'hornbill-system', version: '0.1.0', store, host: new LinuxHostOperations(), log });
 * await server.close();
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { checkDecoded, tolerantDefinition } from '../dataplane/instance-manager/grpc-decoding.ts';
import { HornbillError, isHornbillError } from '../errors.ts';
import { getCapacity } from './capacity.ts';
import { type CallDeadline, type CsiDriverContext, type CsiDriverOptions, driverContext } from './context.ts';
import { controllerPublishVolume, controllerUnpublishVolume } from './controller-publish.ts';
import { createSnapshot, deleteSnapshot, listSnapshots } from './controller-snapshots.ts';
import {
  type CsiRequest,
  controllerExpandVolume,
  controllerGetVolume,
  createVolume,
  deleteVolume,
  listVolumes,
  validateVolumeCapabilities,
} from './controller-volumes.ts';
import { toCsiServiceError } from './grpc-errors.ts';
import {
  type CsiMode,
  controllerGetCapabilities,
  getPluginCapabilities,
  getPluginInfo,
  probe,
  servesController,
  servesNode,
} from './identity.ts';
import { nodeHandlers } from './node.ts';
import { csiServices } from './proto.ts';

export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export interface CsiServerOptions extends CsiDriverOptions {
  /** `unix:///path/csi.sock` (or `unix:/path`). */
  endpoint: string;
  mode: CsiMode;
}

type Handler = (request: CsiRequest, deadline: CallDeadline) => unknown;

/** `unix:///a/b.sock` or `unix:/a/b.sock` → `/a/b.sock`; CLI_USAGE otherwise. */
export function socketPathOf(endpoint: string): string {
  const match = /^unix:(?:\/\/)?(\/.+)$/.exec(endpoint);
  if (match === null)
    throw new HornbillError('CLI_USAGE', `--endpoint must be unix:///PATH, not ${JSON.stringify(endpoint)}`, {
      endpoint,
    });
  return match[1];
}

export class CsiServer {
  readonly endpoint: string;
  readonly mode: CsiMode;
  readonly context: CsiDriverContext;
  /** Calls per method and answers per status name, since start. */
  readonly counters = { calls: {} as Record<string, number>, statuses: {} as Record<string, number> };
  private readonly server: Server;
  /** `<scope>/<id>` of the calls running now. */
  private readonly running = new Set<string>();

  private constructor(options: CsiServerOptions) {
    this.endpoint = options.endpoint;
    this.mode = options.mode;
    this.context = driverContext(options);
    this.server = new Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES });
    const services = csiServices();
    const context = this.context;
    const mode = this.mode;
    this.add(services.Identity.service, {
      GetPluginInfo: () => getPluginInfo(context),
      GetPluginCapabilities: () => getPluginCapabilities(mode),
      Probe: () => probe(context, mode),
    });
    const lock = this.lock.bind(this);
    if (servesController(mode)) {
      this.add(services.Controller.service, {
        CreateVolume: lock('volume', 'name', (request) => createVolume(context, request)),
        DeleteVolume: lock('volume', 'volume_id', (request) => deleteVolume(context, request)),
        ControllerPublishVolume: lock('volume', 'volume_id', (request, deadline) =>
          controllerPublishVolume(context, request, deadline),
        ),
        ControllerUnpublishVolume: lock('volume', 'volume_id', (request, deadline) =>
          controllerUnpublishVolume(context, request, deadline),
        ),
        ValidateVolumeCapabilities: (request) => validateVolumeCapabilities(context, request),
        ListVolumes: (request) => listVolumes(context, request),
        GetCapacity: (request) => getCapacity(context, request),
        ControllerGetCapabilities: () => controllerGetCapabilities(),
        CreateSnapshot: lock('snapshot', 'name', (request) => createSnapshot(context, request)),
        DeleteSnapshot: lock('snapshot', 'snapshot_id', (request) => deleteSnapshot(context, request)),
        ListSnapshots: (request) => listSnapshots(context, request),
        ControllerExpandVolume: lock('volume', 'volume_id', (request) =>
          controllerExpandVolume(context, request),
        ),
        ControllerGetVolume: (request) => controllerGetVolume(context, request),
      });
    }
    if (servesNode(mode)) {
      const handlers = nodeHandlers(context);
      for (const method of [
        'NodeStageVolume',
        'NodeUnstageVolume',
        'NodePublishVolume',
        'NodeUnpublishVolume',
        'NodeExpandVolume',
      ])
        handlers[method] = lock('node', 'volume_id', handlers[method]);
      this.add(services.Node.service, handlers);
    }
  }

  /**
   * One call at a time per volume (or snapshot name) and service: a second one while the
   * first runs is CSI_OPERATION_PENDING (ABORTED), as the specification asks, so that a
   * sidecar's retry never races the call it retries. An empty key is not locked (the
   * handler refuses it).
   */
  private lock(scope: string, field: string, handle: Handler): Handler {
    return async (request, deadline) => {
      const value = request?.[field];
      if (typeof value !== 'string' || value === '') return handle(request, deadline);
      const key = `${scope}/${value}`;
      if (this.running.has(key))
        throw new HornbillError(
          'CSI_OPERATION_PENDING',
          `another call for ${scope} ${JSON.stringify(value)} is in progress`,
          {
            scope,
            id: value,
          },
        );
      this.running.add(key);
      try {
        return await handle(request, deadline);
      } finally {
        this.running.delete(key);
      }
    };
  }

  static async start(options: CsiServerOptions): Promise<CsiServer> {
    if (servesController(options.mode) && options.store === undefined)
      throw new HornbillError('CLI_USAGE', 'the controller service needs a resource store (--store)');
    const socketPath = socketPathOf(options.endpoint);
    removeStaleSocket(socketPath);
    const server = new CsiServer(options);
    await new Promise<void>((resolve, reject) =>
      server.server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (error) =>
        error === null
          ? resolve()
          : reject(
              new HornbillError(
                'CSI_LISTEN_FAILED',
                `the CSI plugin cannot listen on ${socketPath}: ${error.message}`,
                {
                  socketPath,
                },
              ),
            ),
      ),
    );
    return server;
  }

  /** Lets calls in flight finish for `graceMs`, then cuts the rest and removes the socket. */
  async close(graceMs = 5000): Promise<void> {
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
    removeStaleSocket(socketPathOf(this.endpoint));
  }

  private add(definition: ServiceDefinition, handlers: Record<string, Handler>): void {
    const implementation: UntypedServiceImplementation = {};
    for (const [method, handle] of Object.entries(handlers))
      implementation[method] = this.unary(method, handle);
    this.server.addService(tolerantDefinition(definition), implementation);
  }

  private unary(method: string, handle: Handler) {
    return (call: ServerUnaryCall<CsiRequest, unknown>, callback: sendUnaryData<unknown>) => {
      this.count('calls', method);
      const deadline = deadlineOf(call);
      Promise.resolve()
        .then(() => handle(checkDecoded(call.request), deadline))
        .then(
          (response) => {
            this.count('statuses', 'OK');
            callback(null, response);
          },
          (error) => callback(this.failure(method, error)),
        );
    };
  }

  /** The status for a failed call; never throws. */
  private failure(method: string, error: unknown) {
    let failure: ReturnType<typeof toCsiServiceError>;
    try {
      failure = toCsiServiceError(error);
    } catch (conversion) {
      failure = { code: status.INTERNAL, details: `the error could not be sent: ${String(conversion)}` };
    }
    this.count('statuses', status[failure.code] ?? String(failure.code));
    const expected = isHornbillError(error) && error.code !== 'INTERNAL';
    this.context.log(expected ? 'info' : 'error', 'CSI call failed', {
      method,
      code: isHornbillError(error) ? error.code : undefined,
      error: expected ? (error as Error).message : ((error as Error)?.stack ?? String(error)),
    });
    return failure;
  }

  private count(kind: 'calls' | 'statuses', key: string): void {
    this.counters[kind][key] = (this.counters[kind][key] ?? 0) + 1;
  }
}

export function startCsiServer(options: CsiServerOptions): Promise<CsiServer> {
  return CsiServer.start(options);
}

function deadlineOf(call: ServerUnaryCall<CsiRequest, unknown>): CallDeadline {
  const deadline = call.getDeadline();
  const milliseconds = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(milliseconds) && milliseconds > 0 ? milliseconds : Number.POSITIVE_INFINITY;
}

/** A socket left by a killed plugin would make bind fail; anything else at the path is kept. */
function removeStaleSocket(socketPath: string): void {
  try {
    if (fs.lstatSync(socketPath).isSocket()) fs.unlinkSync(socketPath);
  } catch {
    // Nothing there.
  }
  fs.mkdirSync(path.dirname(socketPath), { recursive: true });
}
