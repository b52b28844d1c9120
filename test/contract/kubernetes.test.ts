/**
 * The ResourceStore contract against a real Kubernetes API server, when KUBECONFIG points at
 * a cluster (kind, k3d, minikube, or any test cluster where we may create CRDs and
 * namespaces). The run first applies the CRDs of deploy/crds/ through the API and waits for
 * them to be Established; each test then gets two fresh namespaces of this run
 * (`hornbill-contract-<run>-<n>`, deleted afterwards). The share managers' Lease client
 * (test/contract/lease-client.contract.ts) runs there too. Skipped, with the reason, otherwise.
 *
 *   KUBECONFIG=~/.kube/config node --test test/contract/kubernetes.test.ts
 */
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig, openKubernetesStore } from '../../src/resources/store/kubernetes.ts';
import { applyCustomResourceDefinitions } from '../../src/resources/store/kubernetes-crds.ts';
import { kubernetesLeaseClient } from '../../src/resources/store/kubernetes-lease.ts';
import { defer } from '../helpers/temp.ts';
import { leaseClientContract } from './lease-client.contract.ts';
import { resourceStoreContract } from './resource-store.contract.ts';

const kubeconfig = process.env.KUBECONFIG;

if (kubeconfig === undefined || kubeconfig === '') {
  test('ResourceStore contract (kubernetes)', {
    skip: 'KUBECONFIG is not set: point it at a test cluster (kind, k3d, minikube) to run this suite; it applies deploy/crds/ and makes its own namespaces',
  }, () => {});
  test('LeaseClient contract (kubernetes API server)', {
    skip: "KUBECONFIG is not set: the share managers' Lease contract runs against the stand-in only (test/unit/share-manager/lease-backends.test.ts)",
  }, () => {});
} else {
  const kubeConfig = loadKubeConfig({ kubeconfig });
  await applyCustomResourceDefinitions(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const run = randomBytes(3).toString('hex');
  let sequence = 0;

  const freshNamespace = async (): Promise<string> => {
    const name = `hornbill-contract-${run}-${++sequence}`;
    await core.createNamespace({ body: { metadata: { name, labels: { 'hornbill.io/contract-run': run } } } });
    return name;
  };

  resourceStoreContract('kubernetes', async (t) => {
    const namespace = await freshNamespace();
    const otherNamespace = await freshNamespace();
    for (const name of [namespace, otherNamespace]) {
      defer(t, () => {
        core.deleteNamespace({ name }).catch(() => {});
      });
    }
    const store = await openKubernetesStore({ kubeConfig, namespace });
    defer(t, () => {
      void store.close();
    });
    // etcd compacts old revisions every few minutes; revision 1 is long gone on any cluster.
    return { store, namespace, otherNamespace, staleResourceVersion: async () => '1' };
  });

  // The share managers' Leases (kubernetesLeaseClient): the semantics the Lease stand-in of
  // test/helpers/kubernetes-lease-server.ts copies, checked against the real thing.
  leaseClientContract('kubernetes API server', async (t) => {
    const namespace = await freshNamespace();
    defer(t, () => {
      core.deleteNamespace({ name: namespace }).catch(() => {});
    });
    return (name) => kubernetesLeaseClient(kubeConfig, { namespace, name });
  });
}
