/**
 * The manager's view of the cluster as metrics (docs/metrics.md), read from the resource
 * store at scrape time (one list per kind per scrape): each volume's capacity, actual size, state and robustness and
 * replica count; each node's Ready and Schedulable conditions; each disk's maximum,
 * available, scheduled and reserved bytes as the node reports them; snapshot sizes. One
 * list per kind per scrape; nothing is kept between scrapes.
 */
import type { Registry } from 'prom-client';
import { isConditionTrue } from '../resources/conditions.ts';
import { VOLUME_ROBUSTNESS, VOLUME_STATES } from '../resources/kinds/volume.ts';
import { parseByteQuantity } from '../resources/quantity.ts';
import type { ResourceStore } from '../resources/store/types.ts';
import { onePerScrape, registerFamily, type Sample, stateSamples } from './families.ts';

export function registerClusterMetrics(registry: Registry, store: ResourceStore, namespace: string): void {
  // Several families read the same list: one list per kind per scrape, not one per family.
  const volumes = onePerScrape(async () => (await store.list('Volume', { namespace })).items);
  const nodes = onePerScrape(async () => (await store.list('Node', { namespace })).items);

  registerFamily(registry, 'hornbill_volume_capacity_bytes', 'Size of the volume.', 'gauge', async () =>
    (await volumes()).map((volume) => ({
      labels: { volume: volume.metadata.name },
      value: parseByteQuantity(volume.spec.size) ?? 0,
    })),
  );
  registerFamily(
    registry,
    'hornbill_volume_actual_size_bytes',
    'Bytes the volume holds on a replica, snapshots included (thin: only what holds data).',
    'gauge',
    async () =>
      (await volumes()).map((volume) => ({
        labels: { volume: volume.metadata.name },
        value: volume.status?.actualSize ?? 0,
      })),
  );
  registerFamily(
    registry,
    'hornbill_volume_state',
    'Volume state (1 for the current one).',
    'gauge',
    async () =>
      (await volumes()).flatMap((volume) =>
        volume.status?.state === undefined
          ? []
          : stateSamples({ volume: volume.metadata.name }, 'state', VOLUME_STATES, volume.status.state),
      ),
  );
  registerFamily(
    registry,
    'hornbill_volume_robustness',
    'Volume robustness (1 for the current one; unknown while it is detached or not yet known).',
    'gauge',
    async () =>
      (await volumes()).flatMap((volume) =>
        stateSamples(
          { volume: volume.metadata.name },
          'robustness',
          VOLUME_ROBUSTNESS,
          volume.status?.robustness ?? 'unknown',
        ),
      ),
  );
  registerFamily(
    registry,
    'hornbill_volume_number_of_replicas',
    'Replicas the volume asks for (spec.numberOfReplicas).',
    'gauge',
    async () =>
      (await volumes()).map((volume) => ({
        labels: { volume: volume.metadata.name },
        value: volume.spec.numberOfReplicas,
      })),
  );

  registerFamily(
    registry,
    'hornbill_node_status',
    'Node conditions: 1 when true (condition ready, schedulable), 0 otherwise.',
    'gauge',
    async () =>
      (await nodes()).flatMap((node) =>
        (['Ready', 'Schedulable'] as const).map((condition) => ({
          labels: { node: node.metadata.name, condition: condition.toLowerCase() },
          value: isConditionTrue(node.status?.conditions, condition) ? 1 : 0,
        })),
      ),
  );
  const diskFamily = (name: string, help: string, pick: (status: DiskFigures) => number) =>
    registerFamily(registry, name, help, 'gauge', async () => {
      const samples: Sample[] = [];
      for (const node of await nodes()) {
        for (const [disk, spec] of Object.entries(node.spec.disks ?? {})) {
          const status = node.status?.diskStatus?.[disk];
          if (status === undefined) continue;
          samples.push({
            labels: { node: node.metadata.name, disk, path: spec.path },
            value: pick({ ...status, storageReserved: parseByteQuantity(spec.storageReserved) ?? 0 }),
          });
        }
      }
      return samples;
    });
  diskFamily(
    'hornbill_node_disk_storage_maximum_bytes',
    'Bytes the disk holds, as its node reports.',
    (disk) => disk.storageMaximum,
  );
  diskFamily(
    'hornbill_node_disk_storage_available_bytes',
    'Bytes free on the disk, as its node reports.',
    (disk) => disk.storageAvailable,
  );
  diskFamily(
    'hornbill_node_disk_storage_scheduled_bytes',
    'Bytes promised to the replicas scheduled on the disk (their volume sizes).',
    (disk) => disk.storageScheduled,
  );
  diskFamily(
    'hornbill_node_disk_storage_reserved_bytes',
    'Bytes of the disk kept free for other uses.',
    (disk) => disk.storageReserved,
  );

  registerFamily(registry, 'hornbill_snapshot_size_bytes', 'Bytes a snapshot holds.', 'gauge', async () =>
    (await store.list('Snapshot', { namespace })).items
      .filter((snapshot) => snapshot.status?.size !== undefined)
      .map((snapshot) => ({
        labels: { volume: snapshot.spec.volume, snapshot: snapshot.metadata.name },
        value: snapshot.status?.size ?? 0,
      })),
  );
}

interface DiskFigures {
  storageMaximum: number;
  storageAvailable: number;
  storageScheduled: number;
  storageReserved: number;
}
