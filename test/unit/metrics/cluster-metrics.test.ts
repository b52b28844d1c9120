import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { registerClusterMetrics } from '../../../src/metrics/cluster-metrics.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';
import { requireTool } from '../../helpers/tools.ts';

const namespace = 'hornbill-system';

/** The value of the sample of `name` whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/i.exec(line);
    if (match === null || match[1] !== name) continue;
    const present = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g))
      present.set(pair[1], pair[2]);
    if (Object.entries(labels).every(([key, value]) => present.get(key) === value)) return Number(match[3]);
  }
  return undefined;
}

test('volumes, nodes, disks and snapshots from the store become metrics that promtool accepts', async (t) => {
  const store = await openEmbeddedStore({ directory: path.join(tempDirectory(t), 'state') });
  defer(t, () => store.close());
  const registry = new Registry();
  registerClusterMetrics(registry, store, namespace);

  const volume = await store.create({
    kind: 'Volume',
    metadata: { name: 'vol1', namespace },
    spec: { size: '2Gi', numberOfReplicas: 2 },
  });
  await store.updateStatus({
    ...volume,
    status: { state: 'attached', robustness: 'degraded', actualSize: 123456789, conditions: [] },
  });
  await store.create({ kind: 'Volume', metadata: { name: 'vol2', namespace }, spec: { size: '1Gi' } });
  const node = await store.create({
    kind: 'Node',
    metadata: { name: 'node-1', namespace },
    spec: { disks: { 'disk-a': { path: '/data/a', storageReserved: '1Gi' } } },
  });
  await store.updateStatus({
    ...node,
    status: {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'InstanceManagerRunning',
          message: '',
          lastTransitionTime: '2026-11-26T00:00:00Z',
        },
        {
          type: 'Schedulable',
          status: 'False',
          reason: 'Cordoned',
          message: '',
          lastTransitionTime: '2026-11-26T00:00:00Z',
        },
      ],
      diskStatus: {
        'disk-a': {
          storageAvailable: 5000,
          storageScheduled: 7000,
          storageMaximum: 9000,
          scheduledReplica: {},
        },
      },
    },
  });

  const text = await registry.metrics();
  assert.equal(sample(text, 'hornbill_volume_capacity_bytes', { volume: 'vol1' }), 2 * 1024 ** 3);
  assert.equal(sample(text, 'hornbill_volume_actual_size_bytes', { volume: 'vol1' }), 123456789);
  assert.equal(sample(text, 'hornbill_volume_state', { volume: 'vol1', state: 'attached' }), 1);
  assert.equal(sample(text, 'hornbill_volume_state', { volume: 'vol1', state: 'detached' }), 0);
  assert.equal(sample(text, 'hornbill_volume_robustness', { volume: 'vol1', robustness: 'degraded' }), 1);
  assert.equal(sample(text, 'hornbill_volume_robustness', { volume: 'vol2', robustness: 'unknown' }), 1);
  assert.equal(sample(text, 'hornbill_volume_number_of_replicas', { volume: 'vol1' }), 2);
  assert.equal(sample(text, 'hornbill_node_status', { node: 'node-1', condition: 'ready' }), 1);
  assert.equal(sample(text, 'hornbill_node_status', { node: 'node-1', condition: 'schedulable' }), 0);
  assert.equal(
    sample(text, 'hornbill_node_disk_storage_maximum_bytes', { node: 'node-1', disk: 'disk-a' }),
    9000,
  );
  assert.equal(sample(text, 'hornbill_node_disk_storage_available_bytes', { disk: 'disk-a' }), 5000);
  assert.equal(sample(text, 'hornbill_node_disk_storage_scheduled_bytes', { disk: 'disk-a' }), 7000);
  assert.equal(sample(text, 'hornbill_node_disk_storage_reserved_bytes', { disk: 'disk-a' }), 1024 ** 3);

  if (!requireTool(t, 'promtool', 'prometheus')) return;
  const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(checked.status, 0, `promtool check metrics:\n${checked.stdout}${checked.stderr}`);
});
