/**
 * Watches one instance manager per node: polls GetInfo and ListInstances every second,
 * DiskStats every few seconds, and keeps a WatchInstances stream open for changes in
 * between. Holds what it last saw (reachable or not since when, the process's start time,
 * every engine and replica instance, disk statistics) for the controllers to read, and
 * calls `onChange` with what changed so that they can be woken: the node (reachability,
 * disks, a restarted instance manager) or an instance (by name: engines and replicas are
 * named after their resources).
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { type GrpcMessage, InstanceManagerClient } from '../dataplane/instance-manager/grpc-client.ts';
import { sameJson } from './context.ts';

export interface InstanceManagerEndpoint {
  nodeID: string;
  grpcAddress: string;
  address: string;
  disks: readonly string[];
}

export type MonitorChange =
  | { type: 'node'; nodeID: string }
  | { type: 'instance'; nodeID: string; name: string };

/** How often the instance manager is asked (a deadline of the same length). */
const POLL_INTERVAL_MS = 1000;
const DISK_STATS_INTERVAL_MS = 5000;
const CALL_DEADLINE_MS = 3000;

export class InstanceManagerMonitor {
  readonly endpoint: InstanceManagerEndpoint;
  readonly client: InstanceManagerClient;
  private readonly onChange: (change: MonitorChange) => void;
  /** Whether the last poll reached it. */
  reachable = false;
  /** When it was last reached (ms), or 0 never. */
  lastContactMs = 0;
  /** When it stopped answering (ms): the node-down timeout counts from here. */
  unreachableSinceMs: number;
  info: GrpcMessage | undefined;
  diskStats: GrpcMessage[] | undefined;
  /** Instance name → the instance as last reported. */
  readonly instances = new Map<string, GrpcMessage>();
  /** Whether `instances` reflects a successful list of the current process. */
  instancesKnown = false;
  private watch: ClientReadableStream<GrpcMessage> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastDiskStatsMs = 0;
  private polling = false;
  private stopped = false;

  constructor(endpoint: InstanceManagerEndpoint, onChange: (change: MonitorChange) => void) {
    this.endpoint = endpoint;
    this.onChange = onChange;
    this.client = new InstanceManagerClient(endpoint.grpcAddress, { deadlineMs: 60_000 });
    this.unreachableSinceMs = Date.now();
  }

  start(): void {
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.watch?.cancel();
    this.client.close();
  }

  /** The instance of this name, if the instance manager reports it. */
  instance(name: string): GrpcMessage | undefined {
    return this.instances.get(name);
  }

  /** Polls now (after a change the controllers made) instead of at the next tick. */
  refresh(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    void this.poll();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.poll(), POLL_INTERVAL_MS);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const info = await this.client.call('GetInfo', {}, { deadlineMs: CALL_DEADLINE_MS });
      const list = await this.client.call('ListInstances', {}, { deadlineMs: CALL_DEADLINE_MS });
      if (Date.now() - this.lastDiskStatsMs >= DISK_STATS_INTERVAL_MS || this.diskStats === undefined) {
        const stats = await this.client.call('DiskStats', {}, { deadlineMs: CALL_DEADLINE_MS });
        this.lastDiskStatsMs = Date.now();
        const disks = (stats.disks ?? []) as GrpcMessage[];
        const changed = !sameJson(stripUsage(this.diskStats), stripUsage(disks));
        this.diskStats = disks;
        if (changed) this.onChange({ type: 'node', nodeID: this.endpoint.nodeID });
      }
      const restarted = this.info !== undefined && this.info.started_at !== info.started_at;
      const wasReachable = this.reachable;
      this.info = info;
      this.reachable = true;
      this.lastContactMs = Date.now();
      this.replaceInstances((list.instances ?? []) as GrpcMessage[]);
      if (!wasReachable || restarted) this.onChange({ type: 'node', nodeID: this.endpoint.nodeID });
      this.ensureWatch();
    } catch {
      if (this.reachable) {
        this.reachable = false;
        this.unreachableSinceMs = Date.now();
        this.instancesKnown = false;
        this.watch?.cancel();
        this.watch = undefined;
        this.onChange({ type: 'node', nodeID: this.endpoint.nodeID });
      }
    } finally {
      this.polling = false;
      this.schedule();
    }
  }

  private replaceInstances(instances: GrpcMessage[]): void {
    const seen = new Set<string>();
    for (const instance of instances) {
      seen.add(instance.name);
      this.setInstance(instance);
    }
    for (const name of [...this.instances.keys()]) {
      if (seen.has(name)) continue;
      this.instances.delete(name);
      this.onChange({ type: 'instance', nodeID: this.endpoint.nodeID, name });
    }
    this.instancesKnown = true;
  }

  private setInstance(instance: GrpcMessage): void {
    const previous = this.instances.get(instance.name);
    this.instances.set(instance.name, instance);
    if (previous === undefined || !sameJson(withoutSequence(previous), withoutSequence(instance))) {
      this.onChange({ type: 'instance', nodeID: this.endpoint.nodeID, name: instance.name });
    }
  }

  private ensureWatch(): void {
    if (this.watch !== undefined || this.stopped) return;
    const stream = this.client.stream('WatchInstances', {});
    this.watch = stream;
    stream.on('data', (event: GrpcMessage) => {
      const instance = event.instance as GrpcMessage | undefined;
      if (instance === undefined || instance.name === '') return;
      if (event.type === 'deleted') {
        if (this.instances.delete(instance.name))
          this.onChange({ type: 'instance', nodeID: this.endpoint.nodeID, name: instance.name });
      } else {
        const previous = this.instances.get(instance.name);
        if (previous !== undefined && Number(previous.update_sequence) > Number(instance.update_sequence))
          return;
        this.setInstance(instance);
      }
    });
    const closed = () => {
      if (this.watch === stream) this.watch = undefined;
    };
    stream.on('error', closed);
    stream.on('end', closed);
  }
}

function withoutSequence(instance: GrpcMessage): GrpcMessage {
  const { update_sequence: _ignored, ...rest } = instance;
  return rest;
}

/** Disk statistics without the byte counts that move with every write (they are polled anyway). */
function stripUsage(disks: GrpcMessage[] | undefined): unknown {
  return disks?.map((disk) => ({ path: disk.path, uuid: disk.disk_uuid, total: disk.total_bytes }));
}

/** The monitors of every instance manager, by node. */
export class InstanceManagerMonitors {
  private readonly byNode = new Map<string, InstanceManagerMonitor>();

  constructor(endpoints: readonly InstanceManagerEndpoint[], onChange: (change: MonitorChange) => void) {
    for (const endpoint of endpoints) {
      this.byNode.set(endpoint.nodeID, new InstanceManagerMonitor(endpoint, onChange));
    }
  }

  get(nodeID: string): InstanceManagerMonitor | undefined {
    return this.byNode.get(nodeID);
  }

  all(): InstanceManagerMonitor[] {
    return [...this.byNode.values()];
  }

  start(): void {
    for (const monitor of this.byNode.values()) monitor.start();
  }

  stop(): void {
    for (const monitor of this.byNode.values()) monitor.stop();
  }
}
