/**
 * Cleaning up after a node that was away: processes and replica folders on an instance
 * manager that no resource accounts for (their Engine or Replica went while the node was
 * unreachable or down) are removed once the node is ready again. Called by the node
 * controller (node-controller.ts) on every reconcile of a ready node.
 */
import type { Node } from '../resources/index.ts';
import type { ControllerContext } from './context.ts';
import type { InstanceManagerMonitor } from './instance-manager-monitor.ts';

const COMPONENT = 'hornbill-node-controller';

/**
 * Deletes engine and replica processes that no Engine or Replica resource accounts for
 * (left on a node that was unreachable when their resource went). The processes are those
 * of the last ListInstances, taken before the resources are listed here, and a resource
 * always exists before its process, so a process being created is never taken for one.
 */
export async function removeOrphanInstances(
  context: ControllerContext,
  node: Node,
  monitor: InstanceManagerMonitor,
): Promise<void> {
  if (!monitor.instancesKnown) return;
  const instances = [...monitor.instances.values()];
  const engines = new Set(
    (await context.store.list('Engine', { namespace: context.namespace })).items.map(
      (engine) => engine.metadata.name,
    ),
  );
  const replicas = new Set(
    (await context.store.list('Replica', { namespace: context.namespace })).items.map(
      (replica) => replica.metadata.name,
    ),
  );
  for (const instance of instances) {
    const isEngine = instance.kind === 'engine';
    if ((isEngine ? engines : replicas).has(instance.name)) continue;
    if (isEngine) await monitor.client.call('DeleteEngine', { name: instance.name });
    else await monitor.client.call('DeleteReplica', { name: instance.name, remove_data: true });
    monitor.instances.delete(instance.name);
    monitor.refresh();
    await context.event(
      node,
      'Normal',
      'OrphanInstanceRemoved',
      `removed ${instance.kind} ${instance.name} of volume ${instance.volume_name}: no resource accounts for it`,
      COMPONENT,
    );
  }
}

/**
 * Deletes replica folders that no Replica resource accounts for and no process uses: left
 * on a node that was down when their replica was deleted. Safe against races: a replica's
 * resource exists before its folder, and the folders are those of the last DiskStats, taken
 * before the replicas are listed here.
 */
export async function removeOrphanFolders(
  context: ControllerContext,
  node: Node,
  monitor: InstanceManagerMonitor,
): Promise<void> {
  const disks = monitor.diskStats;
  if (disks === undefined) return;
  const replicas = (await context.store.list('Replica', { namespace: context.namespace })).items;
  const known = new Set(
    replicas
      .filter((replica) => replica.spec.nodeID === node.metadata.name)
      .map((replica) => `${replica.spec.diskPath}\0${replica.spec.dataDirectoryName}`),
  );
  for (const disk of disks) {
    for (const usage of (disk.replicas ?? []) as { data_directory_name: string; instance_name: string }[]) {
      if (usage.instance_name !== '' || known.has(`${disk.path}\0${usage.data_directory_name}`)) continue;
      await monitor.client.call('DeleteReplica', {
        name: usage.data_directory_name,
        remove_data: true,
        disk_path: disk.path,
        data_directory_name: usage.data_directory_name,
      });
      disk.replicas = (disk.replicas ?? []).filter((entry: unknown) => entry !== usage);
      await context.event(
        node,
        'Normal',
        'OrphanFolderRemoved',
        `removed ${disk.path}/replicas/${usage.data_directory_name}: no replica resource accounts for it`,
        COMPONENT,
      );
    }
  }
}
