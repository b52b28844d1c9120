import { fileURLToPath } from 'node:url';
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

/** proto/instance-manager.proto, found from this file so that it works from any working directory. */
export const PROTO_PATH = fileURLToPath(new URL('../../../proto/instance-manager.proto', import.meta.url));
export const SERVICE_NAME = 'hornbill.instancemanager.v1.InstanceManager';

/**
 * How messages map to JavaScript on both ends: field names as in the proto (snake_case),
 * 64-bit integers as numbers (sizes stay below 2^53; larger values fail validation),
 * absent fields as their defaults (so a missing name is '' and is refused by validation).
 */
export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let loaded: ServiceClientConstructor | undefined;

/** The service's client constructor; its `.service` is the definition a server adds. */
export function instanceManagerService(): ServiceClientConstructor {
  if (loaded === undefined) {
    const definition = loadPackageDefinition(loadSync(PROTO_PATH, LOADER_OPTIONS));
    let node: GrpcObject | ServiceClientConstructor = definition;
    for (const part of SERVICE_NAME.split('.')) node = (node as GrpcObject)[part] as GrpcObject;
    loaded = node as unknown as ServiceClientConstructor;
  }
  return loaded;
}
