/**
 * Views that the schema shows but the store keeps in pieces: a snapshot is a Snapshot
 * resource, an entry of its engine's status.snapshots, or both (system snapshots made for
 * rebuilds have no resource); a disk is an entry of its Node's spec.disks and
 * status.diskStatus.
 */
import type { DiskSpec, DiskStatus, Engine, Node, Snapshot, SnapshotInfo } from '../resources/index.ts';

export interface SnapshotView {
  name: string;
  volumeName: string;
  resource?: Snapshot;
  /** What the engine reports (absent while the volume is detached). */
  info?: SnapshotInfo;
}

export interface DiskView {
  nodeName: string;
  name: string;
  spec: DiskSpec;
  status?: DiskStatus;
}

/** The engine's name for the live layer, which is not a snapshot. */
export const VOLUME_HEAD = 'volume-head';

/** Every snapshot of a volume, by name: resources and the engine's list merged. */
export function snapshotViews(
  volumeName: string,
  resources: readonly Snapshot[],
  engine: Engine | undefined,
): SnapshotView[] {
  const views = new Map<string, SnapshotView>();
  for (const resource of resources) {
    if (resource.spec.volume !== volumeName) continue;
    views.set(resource.metadata.name, { name: resource.metadata.name, volumeName, resource });
  }
  for (const [name, info] of Object.entries(engine?.status?.snapshots ?? {})) {
    if (name === VOLUME_HEAD) continue;
    const view = views.get(name);
    if (view === undefined) views.set(name, { name, volumeName, info });
    else view.info = info;
  }
  return [...views.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function diskViews(node: Node): DiskView[] {
  return Object.entries(node.spec.disks)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, spec]) => ({
      nodeName: node.metadata.name,
      name,
      spec,
      status: node.status?.diskStatus?.[name],
    }));
}

/** `ip:port` of a replica's data server, as the engine keys rebuildStatus. */
export function replicaAddress(status: { ip?: string; port?: number } | undefined): string | undefined {
  return status?.ip && status.port ? `${status.ip}:${status.port}` : undefined;
}
