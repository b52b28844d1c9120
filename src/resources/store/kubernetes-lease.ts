/**
 * The leader-election Lease (coordination.k8s.io/v1) through the API server: the LeaseClient
 * that src/resources/leader-election.ts campaigns with, and the share managers' Leases
 * (`share-manager-<volume>`, src/share-manager/kubernetes-leases.ts). Reads map 404 to "no
 * Lease"; writes are conditional on the resourceVersion read (409 → RESOURCE_CONFLICT);
 * delete ignores a Lease already gone. Lease times are
 * MicroTime (RFC 3339 with six fractional digits).
 *
 * ```ts
 * const lease = kubernetesLeaseClient(store.kubeConfig, { namespace: store.namespace });
 * ```
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { isHornbillError } from '../../errors.ts';
import type { JsonObject } from '../json.ts';
import {
  type DeletableLeaseClient,
  LEADER_LEASE_NAME,
  type LeaseRecord,
  type LeaseSpec,
} from '../leader-election.ts';
import { kubernetesRequestOptions } from './kubernetes-config.ts';
import { fromKubernetesError } from './kubernetes-errors.ts';

/** Below the renew deadline (10 s), so that a stalled API server cannot outlast it. */
export const DEFAULT_LEASE_REQUEST_TIMEOUT_MS = 5_000;

export interface KubernetesLeaseOptions {
  namespace: string;
  /** Default `hornbill-manager`. */
  name?: string;
  /** Per request (default 5 s); keep it below the renew deadline. */
  requestTimeoutMs?: number;
}

/** MicroTime text: `2026-01-02T03:04:05.678000Z`. */
export function formatMicroTime(milliseconds: number): string {
  return new Date(milliseconds).toISOString().replace(/Z$/, '000Z');
}

/** A MicroTime or Time from JSON, or the Date client-node deserializes to; undefined if absent or bad. */
export function parseLeaseTime(value: unknown): number | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.getTime();
  if (typeof value !== 'string' || value === '') return undefined;
  const milliseconds = Date.parse(value);
  return Number.isNaN(milliseconds) ? undefined : milliseconds;
}

/** A Lease object (JSON or client-node's model) as a LeaseRecord. */
export function leaseRecordOf(lease: unknown): LeaseRecord {
  const object = (lease ?? {}) as JsonObject;
  const metadata = (object.metadata ?? {}) as JsonObject;
  const spec = (typeof object.spec === 'object' && object.spec !== null ? object.spec : {}) as JsonObject;
  const record: LeaseRecord = {
    holderIdentity: typeof spec.holderIdentity === 'string' ? spec.holderIdentity : '',
    leaseDurationSeconds: typeof spec.leaseDurationSeconds === 'number' ? spec.leaseDurationSeconds : 0,
    leaseTransitions: typeof spec.leaseTransitions === 'number' ? spec.leaseTransitions : 0,
    resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
  };
  const acquire = parseLeaseTime(spec.acquireTime);
  const renew = parseLeaseTime(spec.renewTime);
  if (acquire !== undefined) record.acquireTimeMs = acquire;
  if (renew !== undefined) record.renewTimeMs = renew;
  return record;
}

/** The Lease object to write for `spec` (with `resourceVersion`, a conditional replace). */
export function leaseObject(
  name: string,
  namespace: string,
  spec: LeaseSpec,
  resourceVersion?: string,
): JsonObject {
  const metadata: JsonObject = { name, namespace };
  if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
  const body: JsonObject = {
    holderIdentity: spec.holderIdentity,
    leaseDurationSeconds: spec.leaseDurationSeconds,
    leaseTransitions: spec.leaseTransitions,
  };
  if (spec.acquireTimeMs !== undefined) body.acquireTime = formatMicroTime(spec.acquireTimeMs);
  if (spec.renewTimeMs !== undefined) body.renewTime = formatMicroTime(spec.renewTimeMs);
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec: body };
}

export function kubernetesLeaseClient(
  kubeConfig: KubeConfig,
  options: KubernetesLeaseOptions,
): DeletableLeaseClient {
  const api = kubeConfig.makeApiClient(CoordinationV1Api);
  const name = options.name ?? LEADER_LEASE_NAME;
  const { namespace } = options;
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_LEASE_REQUEST_TIMEOUT_MS;
  const describe = (operation: string) => ({ operation, kind: 'Lease', namespace, name });
  const call = async <T>(operation: string, send: () => Promise<T>): Promise<T> => {
    try {
      return await send();
    } catch (error) {
      throw fromKubernetesError(error, describe(operation));
    }
  };
  return {
    async get() {
      try {
        const lease = await call('get', () =>
          api.readNamespacedLease({ name, namespace }, kubernetesRequestOptions({ timeoutMs })),
        );
        return leaseRecordOf(lease);
      } catch (error) {
        if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
        throw error;
      }
    },
    async create(spec) {
      const body = leaseObject(name, namespace, spec) as unknown as V1Lease;
      const lease = await call('create', () =>
        api.createNamespacedLease({ namespace, body }, kubernetesRequestOptions({ timeoutMs })),
      );
      return leaseRecordOf(lease);
    },
    async update(record) {
      const { resourceVersion, ...spec } = record;
      const body = leaseObject(name, namespace, spec, resourceVersion) as unknown as V1Lease;
      const lease = await call('update', () =>
        api.replaceNamespacedLease({ name, namespace, body }, kubernetesRequestOptions({ timeoutMs })),
      );
      return leaseRecordOf(lease);
    },
    async delete() {
      try {
        await call('delete', () =>
          api.deleteNamespacedLease({ name, namespace }, kubernetesRequestOptions({ timeoutMs })),
        );
      } catch (error) {
        if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
      }
    },
  };
}
