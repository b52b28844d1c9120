/**
 * A CSI client over the plugin's unix socket, as kubelet and the sidecars are: unary calls
 * as promises that reject with the HornbillError the plugin sent (details.grpcStatus holds
 * the gRPC status). For tests, the scripted PVC walk-through and operators' debugging.
 *
 * ```ts
 * const csi = new CsiClient('unix:///var/lib/kubelet/plugins/driver.hornbill.io/csi.sock');
 * const { volume } = await csi.call('Controller', 'CreateVolume', { name: 'pvc-1', volume_capabilities: [...] });
 * csi.close();
 * ```
 */
import { type Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { HornbillError } from '../errors.ts';
import { fromCsiServiceError } from './grpc-errors.ts';
import { type CsiServiceName, csiServices } from './proto.ts';

// biome-ignore lint/suspicious/noExplicitAny: messages are plain objects shaped by proto/csi.proto
export type CsiMessage = Record<string, any>;

type UnaryMethod = (
  request: CsiMessage,
  options: { deadline: Date },
  callback: (error: ServiceError | null, response: CsiMessage) => void,
) => void;

export class CsiClient {
  readonly endpoint: string;
  private readonly clients: Record<CsiServiceName, Client>;
  private readonly deadlineMs: number;

  constructor(endpoint: string, options: { deadlineMs?: number } = {}) {
    this.endpoint = endpoint;
    this.deadlineMs = options.deadlineMs ?? 30_000;
    const services = csiServices();
    const address = endpoint.startsWith('unix:') ? endpoint : `unix://${endpoint}`;
    const channel = credentials.createInsecure();
    this.clients = {
      Identity: new services.Identity(address, channel),
      Controller: new services.Controller(address, channel),
      Node: new services.Node(address, channel),
    };
  }

  call(
    service: CsiServiceName,
    method: string,
    request: CsiMessage = {},
    options: { deadlineMs?: number } = {},
  ): Promise<CsiMessage> {
    const client = this.clients[service];
    const unary = (client as unknown as Record<string, UnaryMethod>)[method];
    if (typeof unary !== 'function')
      return Promise.reject(new HornbillError('INVALID_ARGUMENT', `no CSI method ${service}.${method}`));
    const deadline = new Date(Date.now() + (options.deadlineMs ?? this.deadlineMs));
    return new Promise((resolve, reject) => {
      unary.call(client, request, { deadline }, (error, response) => {
        if (error !== null) reject(fromCsiServiceError(error));
        else resolve(response);
      });
    });
  }

  close(): void {
    for (const client of Object.values(this.clients)) client.close();
  }
}
