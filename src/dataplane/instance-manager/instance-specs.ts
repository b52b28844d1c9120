/**
 * Whether a create request repeats the spec of an existing instance (create is
 * idempotent: the same spec returns the instance, another one is INSTANCE_EXISTS).
 */
import { HornbillError } from '../../errors.ts';
import type { Instance } from './instance.ts';
import type { EngineSpec, ReplicaSpec } from './types.ts';

export function sameReplicaSpec(a: ReplicaSpec, b: ReplicaSpec): boolean {
  return (
    a.volumeName === b.volumeName &&
    a.sizeBytes === b.sizeBytes &&
    a.diskPath === b.diskPath &&
    a.dataDirectoryName === b.dataDirectoryName
  );
}

export function sameEngineSpec(a: EngineSpec, b: EngineSpec): boolean {
  return (
    a.volumeName === b.volumeName &&
    a.sizeBytes === b.sizeBytes &&
    a.frontend === b.frontend &&
    a.workers === b.workers &&
    a.replicaTimeoutMs === b.replicaTimeoutMs &&
    a.preferLocalReplica === b.preferLocalReplica &&
    a.inLocalReplicaThread === b.inLocalReplicaThread &&
    a.replicaAddresses.length === b.replicaAddresses.length &&
    a.replicaAddresses.every((address, index) => address === b.replicaAddresses[index])
  );
}

export function instanceExists(existing: Instance, spec: ReplicaSpec | EngineSpec): HornbillError {
  return new HornbillError(
    'INSTANCE_EXISTS',
    `${existing.kind} ${existing.name} already exists with another spec`,
    { name: spec.name, kind: existing.kind, existing: existing.view() },
  );
}
