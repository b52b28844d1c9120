/**
 * The metrics of one instance manager (docs/metrics.md): frontend I/O of each engine
 * (operations, bytes, errors, latency histograms), engine and replica states, engine
 * robustness and replica modes, rebuild progress, disk capacity and usage, and the
 * process's CPU and memory. Everything is read at scrape time from the instance manager's
 * own state; nothing here runs per I/O.
 */
import { Registry } from 'prom-client';
import type { InstanceManager } from '../dataplane/instance-manager/instance-manager.ts';
import {
  histogramSamples,
  onePerScrape,
  registerFamily,
  registerProcessMetrics,
  type Sample,
  stateSamples,
} from './families.ts';
import { IO_OPERATION_NAMES, type IoOperationValue, LATENCY_BUCKET_SECONDS } from './io-stats.ts';

export const INSTANCE_STATES = ['starting', 'running', 'stopping', 'stopped', 'error'] as const;
export const ROBUSTNESS_VALUES = ['healthy', 'degraded', 'faulted', 'unknown'] as const;
export const REPLICA_MODES = ['RW', 'WO', 'ERR'] as const;

export function instanceManagerRegistry(manager: InstanceManager): Registry {
  const registry = new Registry();
  const node = manager.nodeName;
  registerProcessMetrics(registry, 'hornbill_instance_manager_', { node });

  const engines = () => manager.engineMetrics();
  const ioFamily = (
    name: string,
    help: string,
    read: (stats: ReturnType<typeof engines>[number]['ioStats'], operation: IoOperationValue) => number,
  ) =>
    registerFamily(registry, name, help, 'counter', () =>
      engines().flatMap(({ view, ioStats }) =>
        IO_OPERATION_NAMES.map((operation, index) => ({
          labels: { node, volume: view.volumeName, engine: view.name, operation },
          value: read(ioStats, index as IoOperationValue),
        })),
      ),
    );
  ioFamily(
    'hornbill_volume_io_operations_total',
    'Frontend operations completed on the volume (successful or not), by operation.',
    (stats, operation) => stats.operations[operation],
  );
  ioFamily(
    'hornbill_volume_io_bytes_total',
    'Bytes read, written or unmapped by successful frontend operations.',
    (stats, operation) => stats.bytes[operation],
  );
  ioFamily(
    'hornbill_volume_io_errors_total',
    'Frontend operations that failed (answered with an error to the initiator).',
    (stats, operation) => stats.errors[operation],
  );
  registerFamily(
    registry,
    'hornbill_volume_io_latency_seconds',
    'Frontend operation latency, from the frontend handing the operation to the engine to its completion.',
    'histogram',
    () =>
      engines().flatMap(({ view, ioStats }) =>
        IO_OPERATION_NAMES.flatMap((operation, index) =>
          histogramSamples(
            'hornbill_volume_io_latency_seconds',
            { node, volume: view.volumeName, engine: view.name, operation },
            LATENCY_BUCKET_SECONDS,
            ioStats.cumulativeBuckets(index as IoOperationValue),
            ioStats.latencySumSeconds[index],
          ),
        ),
      ),
  );

  registerFamily(registry, 'hornbill_engine_state', 'Engine state (1 for the current one).', 'gauge', () =>
    manager
      .list('engine')
      .flatMap((view) =>
        stateSamples(
          { node, volume: view.volumeName, engine: view.name },
          'state',
          INSTANCE_STATES,
          view.state,
        ),
      ),
  );
  registerFamily(registry, 'hornbill_replica_state', 'Replica state (1 for the current one).', 'gauge', () =>
    manager
      .list('replica')
      .flatMap((view) =>
        stateSamples(
          { node, volume: view.volumeName, replica: view.name },
          'state',
          INSTANCE_STATES,
          view.state,
        ),
      ),
  );
  registerFamily(
    registry,
    'hornbill_engine_robustness',
    "Robustness of the engine's replica set (1 for the current one; unknown before the first status).",
    'gauge',
    () =>
      engines().flatMap(({ view, status }) =>
        stateSamples(
          { node, volume: view.volumeName, engine: view.name },
          'robustness',
          ROBUSTNESS_VALUES,
          status?.robustness ?? 'unknown',
        ),
      ),
  );
  registerFamily(
    registry,
    'hornbill_engine_replica_mode',
    'Mode of each replica in its engine (1 for the current one).',
    'gauge',
    () =>
      engines().flatMap(({ view, status }) =>
        (status?.replicas ?? []).flatMap((replica) =>
          stateSamples(
            { node, volume: view.volumeName, engine: view.name, replica_address: replica.address },
            'mode',
            REPLICA_MODES,
            replica.mode,
          ),
        ),
      ),
  );
  registerFamily(
    registry,
    'hornbill_engine_rebuild_progress_ratio',
    'Progress of the running rebuild (bytes examined / bytes to examine), 0 to 1.',
    'gauge',
    () => {
      const samples: Sample[] = [];
      for (const { view, status } of engines()) {
        const rebuild = status?.rebuild;
        if (
          rebuild === null ||
          rebuild === undefined ||
          rebuild.state === 'done' ||
          rebuild.state === 'failed'
        )
          continue;
        samples.push({
          labels: { node, volume: view.volumeName, engine: view.name, target: rebuild.target },
          value: rebuild.totalBytes === 0 ? 0 : rebuild.doneBytes / rebuild.totalBytes,
        });
      }
      return samples;
    },
  );

  // Five families read the disks: statfs and the folder walk once per scrape.
  const disks = onePerScrape(() => manager.diskStats());
  const diskFamily = (
    name: string,
    help: string,
    value: (stat: Awaited<ReturnType<typeof disks>>[number]) => number,
  ) =>
    registerFamily(registry, name, help, 'gauge', async () =>
      (await disks()).map((stat) => ({ labels: { node, disk: stat.path }, value: value(stat) })),
    );
  diskFamily(
    'hornbill_disk_capacity_bytes',
    'Size of the filesystem holding the disk.',
    (stat) => stat.totalBytes,
  );
  diskFamily(
    'hornbill_disk_available_bytes',
    'Bytes of the disk available to unprivileged writers.',
    (stat) => stat.availableBytes,
  );
  diskFamily('hornbill_disk_usage_bytes', 'Bytes used on the filesystem holding the disk.', (stat) =>
    Math.max(0, stat.totalBytes - stat.freeBytes),
  );
  diskFamily(
    'hornbill_disk_replica_allocated_bytes',
    'Bytes allocated by the replica folders on the disk (thin: only what holds data).',
    (stat) => stat.replicaUsedBytes,
  );
  registerFamily(
    registry,
    'hornbill_replica_allocated_bytes',
    "Bytes allocated by one replica's folder (its actual size on this node).",
    'gauge',
    async () =>
      (await disks()).flatMap((stat) =>
        stat.replicas
          .filter((usage) => usage.instanceName !== '')
          .map((usage) => ({
            labels: { node, disk: stat.path, replica: usage.instanceName },
            value: usage.usedBytes,
          })),
      ),
  );
  return registry;
}
