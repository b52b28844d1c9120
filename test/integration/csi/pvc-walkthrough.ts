/**
 * The seed's §2 PVC flow as a script through the CSI services, checking the resources at
 * each step as the seed describes them:
 *
 *   CreateVolume (StorageClass `hornbill`, 5Gi)  → Volume exists, detached, healthy, no nodeID
 *   ControllerPublishVolume (the pod's node)      → csi-attacher ticket; attached there, endpoint
 *   NodeStageVolume                                → iSCSI login, mkfs.ext4 -b 4096, mount
 *   NodePublishVolume                              → bind mount into the pod's folder
 *   NodeGetVolumeStats                             → usage; condition normal
 *   NodeUnpublish / NodeUnstage                    → unmounted, logged out
 *   ControllerUnpublishVolume                      → ticket gone; detached
 *   DeleteVolume                                   → the Volume is gone
 *
 * The store, the CSI client and the recording host are injected: the unit test runs it on an
 * embedded store with a stand-in for the controllers; against `hornbill up`, pass an
 * HttpResourceStore and a CSI plugin started with `--store http://…` (the real controllers
 * then do what the stand-in does; `waitMs` should allow for real attaches).
 */
import assert from 'node:assert/strict';
import type { CsiClient } from '../../../src/csi/client.ts';
import type { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { parseIscsiEndpoint } from '../../../src/csi/host/types.ts';
import type { Volume } from '../../../src/resources/kinds/volume.ts';
import { findResource } from '../../../src/resources/store/helpers.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';

export interface WalkthroughOptions {
  store: ResourceStore;
  csi: CsiClient;
  /** The node plugin's host (recording: no kernel initiator here). */
  host: RecordingHostOperations;
  namespace: string;
  nodeId: string;
  /** How long a step may take to show in the resources (default 10 s). */
  waitMs?: number;
  /** Where kubelet would stage and publish (folders are simulated by the recording host). */
  kubeletRoot?: string;
  /** A step's name and what was seen, for the test's log. */
  report?: (step: string, details: Record<string, unknown>) => void;
}

/** The seed's §6-1 StorageClass parameters. */
export const SEED_STORAGE_CLASS_PARAMETERS = {
  numberOfReplicas: '3',
  staleReplicaTimeout: '2880',
  fromBackup: '',
  fsType: 'ext4',
};

const CAPABILITY = {
  mount: { fs_type: 'ext4', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' },
};

async function eventually<T>(what: string, waitMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + waitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${waitMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function runPvcWalkthrough(options: WalkthroughOptions): Promise<void> {
  const { store, csi, host, namespace, nodeId } = options;
  const waitMs = options.waitMs ?? 10_000;
  const report = options.report ?? (() => {});
  const name = 'pvc-5242ccd4-5a41-4bb4-b5f8-6f64118f4d33';
  const kubelet = options.kubeletRoot ?? '/var/lib/kubelet';
  const staging = `${kubelet}/plugins/kubernetes.io/csi/driver.hornbill.io/0f3c/globalmount`;
  const target = `${kubelet}/pods/7d1e/volumes/kubernetes.io~csi/${name}/mount`;
  const getVolume = () => findResource(store, { kind: 'Volume', namespace, name });

  // 1-4. PVC → CreateVolume → Volume CR; the controllers schedule replicas, it rests detached.
  const created = await csi.call('Controller', 'CreateVolume', {
    name,
    capacity_range: { required_bytes: 5 * 1024 ** 3 },
    volume_capabilities: [CAPABILITY],
    parameters: { ...SEED_STORAGE_CLASS_PARAMETERS, 'csi.storage.k8s.io/pvc/name': 'example-vol-rwo' },
  });
  assert.equal(created.volume.volume_id, name);
  assert.equal(created.volume.capacity_bytes, 5 * 1024 ** 3);
  const detached = await eventually('the volume to be detached', waitMs, async () => {
    const volume = await getVolume();
    return volume?.status?.state === 'detached' ? volume : undefined;
  });
  assert.equal(detached.spec.size, '5Gi');
  assert.equal(detached.spec.numberOfReplicas, 3);
  assert.equal(detached.spec.staleReplicaTimeout, 2880);
  assert.equal(detached.spec.nodeID, '');
  assert.equal(detached.status?.currentNodeID, undefined);
  report('created', { state: detached.status?.state, robustness: detached.status?.robustness });

  // 5-8. The pod is scheduled: ControllerPublishVolume → attached on its node, iSCSI endpoint.
  const published = await csi.call(
    'Controller',
    'ControllerPublishVolume',
    { volume_id: name, node_id: nodeId, volume_capability: CAPABILITY, readonly: false },
    { deadlineMs: waitMs },
  );
  const endpoint = published.publish_context.endpoint as string;
  const iscsiTarget = parseIscsiEndpoint(endpoint);
  assert.ok(iscsiTarget, `publish_context.endpoint ${endpoint} is an iSCSI target`);
  const attached = (await getVolume()) as Volume;
  assert.equal(attached.status?.state, 'attached');
  assert.equal(attached.status?.currentNodeID, nodeId);
  assert.equal(attached.status?.endpoint, endpoint);
  const tickets = (await store.get({ kind: 'VolumeAttachment', namespace, name })).spec.attachmentTickets;
  assert.deepEqual(
    Object.values(tickets).map((ticket) => [ticket.type, ticket.nodeID]),
    [['csi-attacher', nodeId]],
  );
  report('attached', { endpoint, robustness: attached.status?.robustness });

  // 8-9. NodeStage: iSCSI login, the device by its by-path link, ext4 on first use, mount.
  host.calls.length = 0;
  await csi.call('Node', 'NodeStageVolume', {
    volume_id: name,
    publish_context: published.publish_context,
    staging_target_path: staging,
    volume_capability: CAPABILITY,
    volume_context: created.volume.volume_context,
  });
  const login = host.calls.find((call) => call.operation === 'iscsiLogin');
  assert.deepEqual(login?.arguments[0], iscsiTarget);
  const mkfs = host.calls.find((call) => call.operation === 'makeFilesystem');
  assert.ok(mkfs, 'a new volume gets a filesystem');
  assert.equal(mkfs.arguments[1], 'ext4');
  assert.deepEqual((mkfs.arguments[2] as string[]).slice(0, 2), ['-b', '4096']);
  const device = mkfs.arguments[0] as string;
  const stagedMount = host.mountTable.find((entry) => entry.mountPoint === staging);
  assert.equal(stagedMount?.source, device);
  assert.equal(stagedMount?.fsType, 'ext4');

  // NodePublish: the staging mount bound into the pod's folder.
  await csi.call('Node', 'NodePublishVolume', {
    volume_id: name,
    publish_context: published.publish_context,
    staging_target_path: staging,
    target_path: target,
    volume_capability: CAPABILITY,
    readonly: false,
  });
  const podMount = host.mountTable.find((entry) => entry.mountPoint === target);
  assert.equal(podMount?.source, device, 'the pod sees the volume device (mount | grep pvc-…)');
  const stats = await csi.call('Node', 'NodeGetVolumeStats', { volume_id: name, volume_path: target });
  assert.equal(stats.usage[0].unit, 'BYTES');
  assert.equal(stats.volume_condition.abnormal, false);
  report('mounted', { device, staging, target, totalBytes: stats.usage[0].total });

  // 11. The pod goes, the PVC is deleted: unpublish, unstage, detach, delete.
  await csi.call('Node', 'NodeUnpublishVolume', { volume_id: name, target_path: target });
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: name, staging_target_path: staging });
  assert.equal(host.mountTable.filter((entry) => entry.source === device).length, 0);
  assert.equal(host.sessions.filter((session) => session.iqn === iscsiTarget.iqn).length, 0);
  await csi.call(
    'Controller',
    'ControllerUnpublishVolume',
    { volume_id: name, node_id: nodeId },
    { deadlineMs: waitMs },
  );
  const after = await eventually('the volume to be detached again', waitMs, async () => {
    const volume = await getVolume();
    return volume?.status?.state === 'detached' ? volume : undefined;
  });
  assert.equal(after.status?.currentNodeID, undefined);
  assert.deepEqual(
    (await store.get({ kind: 'VolumeAttachment', namespace, name })).spec.attachmentTickets,
    {},
  );
  report('detached', { state: after.status?.state });

  await csi.call('Controller', 'DeleteVolume', { volume_id: name });
  await eventually('the volume to be gone', waitMs, async () =>
    (await getVolume()) === undefined ? true : undefined,
  );
  await csi.call('Controller', 'DeleteVolume', { volume_id: name });
  report('deleted', {});
}
