/**
 * The ResourceStore contract against a real Kubernetes API server, when KUBECONFIG points at
 * a cluster with the CRDs of deploy/crds/ applied. Each test gets two fresh namespaces
 * (made and removed with kubectl). Skipped, with the reason, otherwise.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ResourceStore } from '../../src/resources/store/types.ts';
import { defer } from '../helpers/temp.ts';
import { resourceStoreContract } from './resource-store.contract.ts';

const kubeconfig = process.env.KUBECONFIG;
const backend = new URL('../../src/resources/store/kubernetes.ts', import.meta.url);

function kubectl(...args: string[]): void {
  execFileSync('kubectl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
}

if (kubeconfig === undefined || kubeconfig === '') {
  test('ResourceStore contract (kubernetes)', {
    skip: 'KUBECONFIG is not set: point it at a cluster where deploy/crds/ is applied to run this suite',
  }, () => {});
} else if (!fs.existsSync(fileURLToPath(backend))) {
  test('ResourceStore contract (kubernetes)', {
    skip: 'src/resources/store/kubernetes.ts is absent: the Kubernetes backend needs @kubernetes/client-node, which is not installed',
  }, () => {});
} else {
  const { openKubernetesStore } = (await import(backend.href)) as {
    openKubernetesStore(options: { kubeconfig: string }): Promise<ResourceStore>;
  };
  resourceStoreContract('kubernetes', async (t) => {
    const suffix = randomBytes(4).toString('hex');
    const namespace = `hornbill-contract-${suffix}`;
    const otherNamespace = `hornbill-contract-${suffix}-b`;
    for (const name of [namespace, otherNamespace]) {
      kubectl('create', 'namespace', name);
      defer(t, () => kubectl('delete', 'namespace', name, '--wait=false'));
    }
    const store = await openKubernetesStore({ kubeconfig });
    defer(t, () => {
      void store.close();
    });
    // etcd compacts old revisions every few minutes; revision 1 is long gone on any cluster.
    return { store, namespace, otherNamespace, staleResourceVersion: async () => '1' };
  });
}
