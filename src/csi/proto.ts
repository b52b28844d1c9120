/**
 * proto/csi.proto loaded with @grpc/proto-loader: the Identity, Controller and Node service
 * definitions the server adds and the client constructors tests and tools use.
 *
 * Messages are plain objects with the proto's snake_case field names; 64-bit integers are
 * numbers (sizes stay below 2^53; validation refuses larger ones), enums are their names,
 * absent scalars are their defaults and absent messages are null, and a set oneof names
 * itself in a virtual field (`access_type: 'mount'`).
 */
import { fileURLToPath } from 'node:url';
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

export const CSI_PROTO_PATH = fileURLToPath(new URL('../../proto/csi.proto', import.meta.url));
export const CSI_PACKAGE = 'csi.v1';
export const CSI_SERVICES = ['Identity', 'Controller', 'Node'] as const;
export type CsiServiceName = (typeof CSI_SERVICES)[number];

export const CSI_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let loaded: Record<CsiServiceName, ServiceClientConstructor> | undefined;

/** The client constructor of each service; its `.service` is the definition a server adds. */
export function csiServices(): Record<CsiServiceName, ServiceClientConstructor> {
  if (loaded === undefined) {
    const definition = loadPackageDefinition(loadSync(CSI_PROTO_PATH, CSI_LOADER_OPTIONS));
    let namespace: GrpcObject = definition;
    for (const part of CSI_PACKAGE.split('.')) namespace = namespace[part] as GrpcObject;
    loaded = {
      Identity: namespace.Identity as ServiceClientConstructor,
      Controller: namespace.Controller as ServiceClientConstructor,
      Node: namespace.Node as ServiceClientConstructor,
    };
  }
  return loaded;
}
