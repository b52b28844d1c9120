/**
 * The share manager's public surface, for `hornbill share-manager` (src/cli/share-manager.ts)
 * and for the ShareManager controller (src/controllers/share-manager/), which starts share
 * managers, reads their ready line and /healthz, and moves them when their lease expires.
 * docs/share-manager.md describes the process, its flags and the failover it supports.
 */
export {
  checkAddress,
  checkGaneshaSettings,
  checkVolumeName,
  DEFAULT_NFS_OPTIONS,
  type GaneshaSettings,
  ganeshaPaths,
  type NfsOptions,
  parseNfsOptions,
  renderGaneshaConfig,
  shareEndpoint,
} from './config.ts';
export type { ShareHostOperations } from './device.ts';
export type { HealthDocument } from './health.ts';
export {
  breakExpiredLease,
  type DeletableLeaseClient,
  FileLeaseClient,
  healthGatedLease,
  type LeaseClient,
  type LeaseExpiry,
  type LeaseObservation,
  type LeaseRecord,
  leaseExpiresAtByRenewTime,
  leaseExpiry,
  observe,
  shareManagerLeaseName,
} from './lease.ts';
export {
  describeLeaseLocation,
  fileShareManagerLeases,
  kubernetesLeaseLocation,
  LEASE_BACKENDS,
  type LeaseBackend,
  type ShareManagerLeaseLocation,
  type ShareManagerLeases,
} from './lease-backend.ts';
export { probeNfsNull } from './nfs-probe.ts';
export {
  ShareManager,
  type ShareManagerInfo,
  type ShareManagerOptions,
  type ShareSource,
} from './share-manager.ts';
export { DEFAULT_RESTART_POLICY, type RestartPolicy, restartDecision, restartDelayMs } from './supervisor.ts';
