/**
 * Conversions between the instance manager's views (camelCase, types.ts) and the messages
 * of proto/instance-manager.proto (snake_case, as the proto loader gives them).
 */
import type { LayerInfo } from '../../storage/replica-store.ts';
import type { CloneProgress } from '../engine/clone.ts';
import type { RebuildProgress } from '../engine/rebuild.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import type { DiskStat } from './disk-stats.ts';
import type { PurgeState } from './engine-instance.ts';
import type { EngineStatusView, InstanceManagerInfo } from './instance-manager.ts';
import type { ShareManagerView } from './share-manager-host.ts';
import type { InstanceLogRecord, InstanceView } from './types.ts';

type Message = Record<string, unknown>;

export function infoMessage(info: InstanceManagerInfo, grpc: { host: string; port: number }): Message {
  return {
    node_name: info.nodeName,
    address: info.address,
    grpc,
    iscsi: info.iscsi,
    nbd: info.nbd,
    disk_paths: info.diskPaths,
    replica_port_first: info.replicaPorts?.first ?? 0,
    replica_port_last: info.replicaPorts?.last ?? 0,
    api_version: info.apiVersion,
    started_at: info.startedAt,
    counters: info.counters,
  };
}

export function instanceMessage(view: InstanceView): Message {
  return {
    name: view.name,
    kind: view.kind,
    volume_name: view.volumeName,
    state: view.state,
    error_message: view.error?.message ?? '',
    error_code: view.error?.code ?? '',
    node_name: view.nodeName,
    address: view.address,
    port: view.port,
    endpoint: view.endpoint,
    size_bytes: view.sizeBytes,
    started_at: view.startedAt,
    restart_count: view.restartCount,
    update_sequence: view.updateSequence,
    replica:
      view.replica === undefined
        ? null
        : {
            disk_path: view.replica.diskPath,
            data_directory_name: view.replica.dataDirectoryName,
            directory: view.replica.directory,
            revision_counter_at_start: view.replica.revisionCounterAtStart,
          },
    engine:
      view.engine === undefined
        ? null
        : {
            frontend: view.engine.frontend,
            workers: view.engine.workers,
            replica_timeout_ms: view.engine.replicaTimeoutMs,
            prefer_local_replica: view.engine.preferLocalReplica,
            in_local_replica_thread: view.engine.inLocalReplicaThread,
            lane_host_replica: view.engine.laneHostReplica,
            replica_addresses: view.engine.replicaAddresses,
            robustness: view.engine.robustness,
            replica_mode_map: view.engine.replicaModeMap,
            is_rebuilding: view.engine.isRebuilding,
          },
  };
}

export function snapshotMessage(layer: LayerInfo): Message {
  return {
    name: layer.name,
    parent: layer.parent ?? '',
    children: layer.children,
    created_at: layer.createdAt,
    user_created: layer.userCreated,
    removed: layer.removed,
    labels: layer.labels,
    size_bytes: layer.sizeBytes,
    data_bytes: layer.dataBytes,
    hash: layer.hash ?? '',
    is_head: layer.isHead,
    in_live_chain: layer.inLiveChain,
  };
}

export function rebuildMessage(rebuild: RebuildProgress | null): Message | null {
  if (rebuild === null) return null;
  const progress = rebuild.state === 'done' ? 100 : percent(rebuild.doneBytes, rebuild.totalBytes);
  return {
    is_rebuilding: rebuild.state !== 'done' && rebuild.state !== 'failed',
    state: rebuild.state,
    target: rebuild.target,
    progress,
    total_bytes: rebuild.totalBytes,
    done_bytes: rebuild.doneBytes,
    transferred_bytes: rebuild.transferredBytes,
    sources: rebuild.sources,
    started_at: rebuild.startedAt,
    finished_at: rebuild.finishedAt ?? '',
    error: rebuild.error ?? '',
  };
}

export function cloneMessage(clone: CloneProgress | null): Message | null {
  if (clone === null) return null;
  return {
    is_cloning: clone.state === 'preparing' || clone.state === 'copying',
    state: clone.state,
    origin: clone.origin,
    snapshot: clone.snapshot,
    progress: clone.state === 'done' ? 100 : percent(clone.doneBytes, clone.totalBytes),
    total_bytes: clone.totalBytes,
    done_bytes: clone.doneBytes,
    transferred_bytes: clone.transferredBytes,
    source: clone.source,
    started_at: clone.startedAt,
    finished_at: clone.finishedAt ?? '',
    error: clone.error ?? '',
  };
}

function percent(done: number, total: number): number {
  return total === 0 ? 0 : Math.min(99, Math.floor((done / total) * 100));
}

export function purgeMessage(purge: PurgeState): Message {
  return {
    is_purging: purge.isPurging,
    state: purge.state,
    error: purge.error,
    purged_layers: purge.purgedLayers,
    copied_bytes: purge.copiedBytes,
  };
}

export function engineStatusMessage(status: EngineStatusView): Message {
  const modes: Record<string, string> = {};
  for (const replica of status.replicas) modes[replica.address] = replica.mode;
  return {
    name: status.instance,
    volume_name: status.volumeName,
    size_bytes: status.sizeBytes,
    robustness: status.robustness,
    replica_mode_map: modes,
    replicas: status.replicas.map((replica) => ({
      address: replica.address,
      mode: replica.mode,
      local: replica.local,
      error: replica.error ?? '',
    })),
    rebuild: rebuildMessage(status.rebuild),
    clone: cloneMessage(status.clone ?? null),
    purge: purgeMessage(status.purge),
    is_expanding: status.isExpanding,
    last_expansion_error: status.lastExpansionError,
  };
}

export function replicaInfoMessage(name: string, info: ReplicaInfo): Message {
  return {
    name,
    size_bytes: info.sizeBytes,
    revision_counter: info.revisionCounter,
    rebuilding: info.rebuilding,
    chain: info.chain.map(snapshotMessage),
  };
}

export function diskMessage(disk: DiskStat): Message {
  return {
    path: disk.path,
    disk_uuid: disk.diskUUID,
    filesystem_type: disk.filesystemType,
    total_bytes: disk.totalBytes,
    free_bytes: disk.freeBytes,
    available_bytes: disk.availableBytes,
    replica_used_bytes: disk.replicaUsedBytes,
    replicas: disk.replicas.map((replica) => ({
      data_directory_name: replica.dataDirectoryName,
      instance_name: replica.instanceName,
      used_bytes: replica.usedBytes,
    })),
  };
}

export function logRecordMessage(record: InstanceLogRecord): Message {
  return {
    instance: record.instance,
    sequence: record.sequence,
    time: record.time,
    level: record.level,
    message: record.message,
    details_json: JSON.stringify(record.details),
    source: record.source,
  };
}

export function shareManagerMessage(view: ShareManagerView): Message {
  return {
    name: view.name,
    kind: view.kind,
    volume_name: view.volumeName,
    state: view.state,
    error_message: view.error?.message ?? '',
    error_code: view.error?.code ?? '',
    node_name: view.nodeName,
    address: view.address,
    port: view.port,
    endpoint: view.endpoint,
    pid: view.pid,
    nfs_pid: view.nfsPid,
    source: view.source,
    export_path: view.exportPath,
    device: view.device,
    health_url: view.healthUrl,
    lease_file: view.leaseFile,
    lease_backend: view.leaseBackend,
    lease_namespace: view.leaseNamespace,
    start_to_ready_ms: view.startToReadyMs,
    started_at: view.startedAt,
    restart_count: view.restartCount,
    update_sequence: view.updateSequence,
  };
}
