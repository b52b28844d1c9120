/**
 * CreateSnapshot / DeleteSnapshot / ListSnapshots and CreateVolume from a snapshot, with the
 * test playing the snapshot controller (controller-stand-in.ts marks snapshots ready).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CsiClient, CsiMessage } from '../../../src/csi/client.ts';
import { rejectsWith } from './assertions.ts';
import { GiB, MiB, MOUNT_CAPABILITY, NAMESPACE, startHarness } from './harness.ts';

async function readySnapshot(csi: CsiClient, request: Record<string, string>) {
  for (let i = 0; i < 200; i++) {
    const { snapshot } = await csi.call('Controller', 'CreateSnapshot', request);
    if (snapshot.ready_to_use) return snapshot;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the snapshot never became ready');
}

test('snapshots: create (idempotent), ALREADY_EXISTS for another volume, list, restore, delete', async (t) => {
  const { csi, store } = await startHarness(t);
  await rejectsWith(csi.call('Controller', 'CreateSnapshot', { name: 's' }), 'INVALID_ARGUMENT');
  await rejectsWith(csi.call('Controller', 'CreateSnapshot', { source_volume_id: 'v' }), 'INVALID_ARGUMENT');
  await rejectsWith(
    csi.call('Controller', 'CreateSnapshot', { source_volume_id: 'v', name: 'snapshot-1' }),
    'NOT_FOUND',
  );
  await csi.call('Controller', 'CreateVolume', {
    name: 'v',
    capacity_range: { required_bytes: GiB },
    volume_capabilities: [MOUNT_CAPABILITY],
  });
  await csi.call('Controller', 'CreateVolume', {
    name: 'w',
    capacity_range: { required_bytes: GiB },
    volume_capabilities: [MOUNT_CAPABILITY],
  });

  const snapshot = await readySnapshot(csi, { source_volume_id: 'v', name: 'snapshot-1' });
  assert.equal(snapshot.snapshot_id, 'snap://v/snapshot-1');
  assert.equal(snapshot.source_volume_id, 'v');
  assert.equal(snapshot.size_bytes, GiB);
  assert.ok(snapshot.creation_time.seconds > 1_700_000_000);
  assert.equal(
    (await store.get({ kind: 'Snapshot', namespace: NAMESPACE, name: 'snapshot-1' })).spec.volume,
    'v',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateSnapshot', { source_volume_id: 'w', name: 'snapshot-1' }),
    'ALREADY_EXISTS',
  );
  await readySnapshot(csi, { source_volume_id: 'v', name: 'snapshot-2' });
  await readySnapshot(csi, { source_volume_id: 'w', name: 'snapshot-3' });

  const ids = (answer: CsiMessage) => answer.entries.map((entry: CsiMessage) => entry.snapshot.snapshot_id);
  assert.deepEqual(ids(await csi.call('Controller', 'ListSnapshots', {})), [
    'snap://v/snapshot-1',
    'snap://v/snapshot-2',
    'snap://w/snapshot-3',
  ]);
  assert.deepEqual(ids(await csi.call('Controller', 'ListSnapshots', { source_volume_id: 'w' })), [
    'snap://w/snapshot-3',
  ]);
  assert.deepEqual(
    ids(await csi.call('Controller', 'ListSnapshots', { snapshot_id: 'snap://v/snapshot-2' })),
    ['snap://v/snapshot-2'],
  );
  assert.deepEqual(ids(await csi.call('Controller', 'ListSnapshots', { snapshot_id: 'snap://v/none' })), []);
  assert.deepEqual(ids(await csi.call('Controller', 'ListSnapshots', { source_volume_id: 'nothing' })), []);
  const first = await csi.call('Controller', 'ListSnapshots', { max_entries: 2 });
  assert.equal(first.entries.length, 2);
  const second = await csi.call('Controller', 'ListSnapshots', {
    max_entries: 2,
    starting_token: first.next_token,
  });
  assert.deepEqual(ids(second), ['snap://w/snapshot-3']);
  assert.equal(second.next_token, '');
  await rejectsWith(csi.call('Controller', 'ListSnapshots', { starting_token: 'x' }), 'ABORTED');

  // Restore: the new volume records the snapshot as its data source; it cannot be smaller.
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      name: 'restored-small',
      capacity_range: { required_bytes: 10 * MiB, limit_bytes: 10 * MiB },
      volume_capabilities: [MOUNT_CAPABILITY],
      volume_content_source: { snapshot: { snapshot_id: snapshot.snapshot_id } },
    }),
    'OUT_OF_RANGE',
  );
  const restored = await csi.call('Controller', 'CreateVolume', {
    name: 'restored',
    volume_capabilities: [MOUNT_CAPABILITY],
    volume_content_source: { snapshot: { snapshot_id: snapshot.snapshot_id } },
  });
  assert.deepEqual(restored.volume.content_source.snapshot, { snapshot_id: 'snap://v/snapshot-1' });
  assert.equal(
    (await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'restored' })).spec.dataSource,
    'snap://v/snapshot-1',
  );

  await rejectsWith(csi.call('Controller', 'DeleteSnapshot', {}), 'INVALID_ARGUMENT');
  await csi.call('Controller', 'DeleteSnapshot', { snapshot_id: 'snap://v/snapshot-1' });
  await csi.call('Controller', 'DeleteSnapshot', { snapshot_id: 'snap://v/snapshot-1' });
  await csi.call('Controller', 'DeleteSnapshot', { snapshot_id: 'not-an-id' });
  assert.deepEqual(ids(await csi.call('Controller', 'ListSnapshots', { source_volume_id: 'v' })), [
    'snap://v/snapshot-2',
  ]);
});
