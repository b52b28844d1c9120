/**
 * The share managers' leases as coordination.k8s.io/v1 Lease objects, `share-manager-<volume>`
 * in one namespace (Kubernetes mode): the manager's ShareManager controller reads, breaks and
 * deletes them; each `hornbill share-manager --lease kubernetes` campaigns for its own. Loads
 * @kubernetes/client-node, so only Kubernetes mode imports this file (dynamically).
 *
 * ```ts
 * const leases = kubernetesShareManagerLeases(store.kubeConfig, { namespace: 'hornbill-system' });
 * const lease = leases.client('pvc-1'); // hornbill-system/share-manager-pvc-1
 * ```
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { kubernetesLeaseClient } from '../resources/store/kubernetes-lease.ts';
import { shareManagerLeaseName } from './lease.ts';
import { kubernetesLeaseLocation, type ShareManagerLeases } from './lease-backend.ts';

export interface KubernetesShareManagerLeasesOptions {
  namespace: string;
  /** Per request (default: kubernetesLeaseClient's 5 s, below the renew deadline). */
  requestTimeoutMs?: number;
}

export function kubernetesShareManagerLeases(
  kubeConfig: KubeConfig,
  options: KubernetesShareManagerLeasesOptions,
): ShareManagerLeases {
  const { namespace, requestTimeoutMs } = options;
  return {
    backend: 'kubernetes',
    client: (volume) =>
      kubernetesLeaseClient(kubeConfig, { namespace, name: shareManagerLeaseName(volume), requestTimeoutMs }),
    location: (volume) => kubernetesLeaseLocation(namespace, volume),
  };
}
