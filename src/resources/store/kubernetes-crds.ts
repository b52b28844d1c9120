/**
 * Installs Hornbill's CustomResourceDefinitions (the ones deploy/crds/ holds, generated from
 * src/resources/crd.ts) through the API server, and waits until they are Established. For
 * the contract tests and for `hornbill manager --store kubernetes` on a fresh cluster; an
 * operator can equally `kubectl apply -f deploy/crds/`.
 *
 * ```ts
 * await applyCustomResourceDefinitions(loadKubeConfig({ kubeconfig }));
 * ```
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { HornbillError, isHornbillError } from '../../errors.ts';
import { crdName, customResourceDefinition } from '../crd.ts';
import type { JsonObject } from '../json.ts';
import { KIND_DEFINITIONS, KINDS } from '../registry.ts';
import { DEFAULT_REQUEST_TIMEOUT_MS, kubernetesRequestOptions } from './kubernetes-config.ts';
import { fromKubernetesError } from './kubernetes-errors.ts';

/** CRDs are read and written as plain JSON (client-node's typed model would drop x-kubernetes-* keys). */
const CRD_LOCATION = { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions' };
const POLL_MS = 250;

export interface ApplyCrdOptions {
  /** How long to wait for every CRD to be Established (default 60 s). */
  waitMs?: number;
  requestTimeoutMs?: number;
  fieldManager?: string;
}

/** True when the CRD's status has condition Established=True. */
export function isEstablished(crd: unknown): boolean {
  const conditions = (crd as { status?: { conditions?: { type?: string; status?: string }[] } })?.status
    ?.conditions;
  return (conditions ?? []).some(
    (condition) => condition.type === 'Established' && condition.status === 'True',
  );
}

/** Creates each CRD, or replaces it when it exists; then waits until all are Established. */
export async function applyCustomResourceDefinitions(
  kubeConfig: KubeConfig,
  options: ApplyCrdOptions = {},
): Promise<void> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const requestOptions = () =>
    kubernetesRequestOptions({ timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS });
  const fieldManager = options.fieldManager ?? 'hornbill';
  const names = KINDS.map((kind) => crdName(KIND_DEFINITIONS[kind]));
  const read = async (name: string): Promise<JsonObject | undefined> => {
    try {
      return (await api.getClusterCustomObject({ ...CRD_LOCATION, name }, requestOptions())) as JsonObject;
    } catch (error) {
      const mapped = fromKubernetesError(error, { operation: 'get', kind: 'CustomResourceDefinition', name });
      if (isHornbillError(mapped, 'RESOURCE_NOT_FOUND')) return undefined;
      throw mapped;
    }
  };
  for (const kind of KINDS) {
    const body = customResourceDefinition(kind);
    const name = crdName(KIND_DEFINITIONS[kind]);
    const request = { operation: 'apply', kind: 'CustomResourceDefinition', name };
    try {
      const current = await read(name);
      if (current === undefined) {
        await api.createClusterCustomObject({ ...CRD_LOCATION, body, fieldManager }, requestOptions());
      } else {
        const resourceVersion = (current.metadata as { resourceVersion?: string } | undefined)
          ?.resourceVersion;
        const metadata = { ...(body.metadata as JsonObject), resourceVersion };
        await api.replaceClusterCustomObject(
          { ...CRD_LOCATION, name, body: { ...body, metadata }, fieldManager },
          requestOptions(),
        );
      }
    } catch (error) {
      throw fromKubernetesError(error, request);
    }
  }
  const deadline = Date.now() + (options.waitMs ?? 60_000);
  for (const name of names) {
    for (;;) {
      if (isEstablished(await read(name))) break;
      if (Date.now() > deadline) {
        throw new HornbillError(
          'KUBERNETES_REQUEST_FAILED',
          `CustomResourceDefinition ${name} is not Established`,
          {
            status: 0,
            name,
          },
        );
      }
      await sleep(POLL_MS);
    }
  }
}
