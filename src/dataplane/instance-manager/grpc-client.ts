import { type Client, type ClientReadableStream, credentials, type ServiceError } from '@grpc/grpc-js';
import { HornbillError } from '../../errors.ts';
import { fromServiceError } from './grpc-errors.ts';
import { instanceManagerService } from './grpc-proto.ts';

// biome-ignore lint/suspicious/noExplicitAny: messages are plain objects shaped by the proto
export type GrpcMessage = Record<string, any>;

type UnaryMethod = (
  request: GrpcMessage,
  options: { deadline: Date },
  callback: (error: ServiceError | null, response: GrpcMessage) => void,
) => void;
type StreamMethod = (request: GrpcMessage) => ClientReadableStream<GrpcMessage>;

/**
 * A client of one instance manager's gRPC API (proto/instance-manager.proto) for the
 * control plane and tests: unary calls as promises that reject with the HornbillError the
 * server sent (its code from the `hornbill-error-code` trailer), streams as grpc-js streams.
 *
 * ```ts
 * const client = new InstanceManagerClient('127.0.0.11:8500');
 * const replica = await client.call('CreateReplica', { name: 'pvc-1-r-1', volume_name: 'pvc-1',
 *   size_bytes: 1 << 30, disk_path: '/data', data_directory_name: 'pvc-1-3f2a' });
 * client.close();
 * ```
 */
export class InstanceManagerClient {
  readonly address: string;
  readonly client: Client;
  private readonly deadlineMs: number;

  constructor(address: string, options: { deadlineMs?: number } = {}) {
    this.address = address;
    this.deadlineMs = options.deadlineMs ?? 60_000;
    const Constructor = instanceManagerService();
    this.client = new Constructor(address, credentials.createInsecure());
  }

  /** Calls a unary method; rejects with a HornbillError. */
  call(
    method: string,
    request: GrpcMessage = {},
    options: { deadlineMs?: number } = {},
  ): Promise<GrpcMessage> {
    const unary = (this.client as unknown as Record<string, UnaryMethod>)[method];
    if (typeof unary !== 'function')
      return Promise.reject(new HornbillError('INVALID_ARGUMENT', `no instance manager method ${method}`));
    const deadline = new Date(Date.now() + (options.deadlineMs ?? this.deadlineMs));
    return new Promise((resolve, reject) => {
      unary.call(this.client, request, { deadline }, (error, response) => {
        if (error !== null) reject(fromServiceError(error));
        else resolve(response);
      });
    });
  }

  /** Opens a server stream (WatchInstances, StreamLogs); cancel it with `.cancel()`. */
  stream(
    method: 'WatchInstances' | 'StreamLogs',
    request: GrpcMessage = {},
  ): ClientReadableStream<GrpcMessage> {
    const open = (this.client as unknown as Record<string, StreamMethod>)[method];
    return open.call(this.client, request);
  }

  close(): void {
    this.client.close();
  }
}
