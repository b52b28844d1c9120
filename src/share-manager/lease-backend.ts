/**
 * Where the share managers' leases live, one per volume: a factory of `LeaseClient`s that the
 * ShareManager controller goes through (src/controllers/share-manager/world.ts), so that its
 * code does not know which backend it runs on.
 *
 * - `file` (embedded mode, `hornbill up`): `<directory>/<volume>.json`, a `FileLeaseClient`;
 *   the folder must be seen by the controller and every node's share managers.
 * - `kubernetes`: the Lease `share-manager-<volume>` in the manager's namespace
 *   (`kubernetesShareManagerLeases`, src/share-manager/kubernetes-leases.ts, kept apart so
 *   that embedded mode never loads the Kubernetes client).
 *
 * `location(volume)` says where the share manager process finds the same lease — what the
 * controller passes in CreateShareManager (`lease_backend`, `lease_file`, `lease_namespace`)
 * and what becomes `hornbill share-manager --lease …`.
 *
 * ```ts
 * const leases = fileShareManagerLeases('/var/lib/hornbill/share-manager-leases');
 * const record = await leases.client('pvc-1').get();
 * await leases.client('pvc-1').delete(); // teardown
 * ```
 */
import path from 'node:path';
import type { DeletableLeaseClient } from '../resources/leader-election.ts';
import { FileLeaseClient, shareManagerLeaseName } from './lease.ts';

export const LEASE_BACKENDS = ['file', 'kubernetes'] as const;
export type LeaseBackend = (typeof LEASE_BACKENDS)[number];

/** Where one volume's lease is. */
export type ShareManagerLeaseLocation =
  | { backend: 'file'; file: string }
  | { backend: 'kubernetes'; namespace: string; name: string };

export interface ShareManagerLeases {
  readonly backend: LeaseBackend;
  /** A client of the volume's lease (cheap: make one per call). */
  client(volume: string): DeletableLeaseClient;
  location(volume: string): ShareManagerLeaseLocation;
}

/** `file:/path/lease.json` or `kubernetes:namespace/share-manager-<volume>`, for logs and ready lines. */
export function describeLeaseLocation(location: ShareManagerLeaseLocation): string {
  return location.backend === 'file'
    ? `file:${location.file}`
    : `kubernetes:${location.namespace}/${location.name}`;
}

/** Embedded mode: one JSON file per volume in `directory`. */
export function fileShareManagerLeases(directory: string): ShareManagerLeases {
  const file = (volume: string) => path.join(directory, `${volume}.json`);
  return {
    backend: 'file',
    client: (volume) => new FileLeaseClient(file(volume)),
    location: (volume) => ({ backend: 'file', file: file(volume) }),
  };
}

/** The Kubernetes location of a volume's lease (the name the share manager derives too). */
export function kubernetesLeaseLocation(namespace: string, volume: string): ShareManagerLeaseLocation {
  return { backend: 'kubernetes', namespace, name: shareManagerLeaseName(volume) };
}
