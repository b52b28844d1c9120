/**
 * The instances of one instance manager by name, and the watchers told of every change:
 * each update or deletion gets the next number of a sequence shared by all instances.
 */
import type { Worker } from 'node:worker_threads';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { EngineInstance } from './engine-instance.ts';
import type { Instance } from './instance.ts';
import { ReplicaInstance } from './replica-instance.ts';
import type { EngineSpec, InstanceEvent, InstanceKind, InstanceView, ReplicaSpec } from './types.ts';
import { instanceName, kindFilter } from './validation.ts';

export class InstanceRegistry {
  private readonly instances = new Map<string, Instance>();
  private readonly watchers = new Set<(event: InstanceEvent) => void>();
  private sequence = 0;
  private readonly log: Logger;
  private readonly counters: { instancesDeleted: number };

  /** `counters.instancesDeleted` counts the instances forgotten. */
  constructor(log: Logger, counters: { instancesDeleted: number }) {
    this.log = log;
    this.counters = counters;
  }

  get size(): number {
    return this.instances.size;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  get(name: string): Instance | undefined {
    return this.instances.get(name);
  }

  set(name: string, instance: Instance): void {
    this.instances.set(name, instance);
  }

  values(): IterableIterator<Instance> {
    return this.instances.values();
  }

  find(name: unknown, kind?: 'replica'): ReplicaInstance;
  find(name: unknown, kind: 'engine'): EngineInstance;
  find(name: unknown, kind?: InstanceKind): Instance;
  find(name: unknown, kind?: InstanceKind): Instance {
    const checked = instanceName(name);
    const instance = this.instances.get(checked);
    if (instance === undefined || (kind !== undefined && instance.kind !== kind)) {
      throw new HornbillError('INSTANCE_NOT_FOUND', `no ${kind ?? 'instance'} named ${checked}`, {
        name: checked,
        kind: kind ?? 'any',
      });
    }
    return instance;
  }

  list(kind?: unknown): InstanceView[] {
    const wanted = kindFilter(kind);
    return [...this.instances.values()]
      .filter((instance) => wanted === undefined || instance.kind === wanted)
      .map((instance) => instance.view())
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Calls `listener` with every later change; returns the current instances and how to stop. */
  watch(listener: (event: InstanceEvent) => void): { initial: InstanceView[]; unsubscribe: () => void } {
    this.watchers.add(listener);
    return { initial: this.list(), unsubscribe: () => this.watchers.delete(listener) };
  }

  clearWatchers(): void {
    this.watchers.clear();
  }

  /** Throws INSTANCE_CONFLICT when another replica already uses the folder of `spec`. */
  checkFolderFree(spec: ReplicaSpec): void {
    for (const instance of this.instances.values()) {
      if (
        instance instanceof ReplicaInstance &&
        instance.spec.diskPath === spec.diskPath &&
        instance.spec.dataDirectoryName === spec.dataDirectoryName
      ) {
        throw new HornbillError(
          'INSTANCE_CONFLICT',
          `replica ${instance.name} already uses ${instance.directory}`,
          { name: spec.name, usedBy: instance.name, directory: instance.directory },
        );
      }
    }
  }

  /** Throws INSTANCE_CONFLICT when another engine already serves the volume of `spec`. */
  checkVolumeFree(spec: EngineSpec): void {
    for (const instance of this.instances.values()) {
      if (instance instanceof EngineInstance && instance.spec.volumeName === spec.volumeName) {
        throw new HornbillError(
          'INSTANCE_CONFLICT',
          `engine ${instance.name} already serves volume ${spec.volumeName} on this node`,
          { name: spec.name, usedBy: instance.name, volumeName: spec.volumeName },
        );
      }
    }
  }

  engines(): EngineInstance[] {
    const engines = [];
    for (const instance of this.instances.values()) {
      if (instance instanceof EngineInstance) engines.push(instance);
    }
    return engines;
  }

  /** The first engine serving `volume`, if any. */
  engineServing(volume: string): EngineInstance | undefined {
    for (const instance of this.instances.values()) {
      if (instance instanceof EngineInstance && instance.spec.volumeName === volume) return instance;
    }
    return undefined;
  }

  /** The replica folders on `disk` in use: data directory name → replica name. */
  replicaFolders(disk: string): Map<string, string> {
    const users = new Map<string, string>();
    for (const instance of this.instances.values())
      if (instance instanceof ReplicaInstance && instance.spec.diskPath === disk)
        users.set(instance.spec.dataDirectoryName, instance.name);
    return users;
  }

  /** The running replica served at one of `addresses` ("host:port") on `address`, with its thread. */
  runningReplicaThread(address: string, addresses: string[]): { name: string; thread: Worker } | undefined {
    for (const instance of this.instances.values()) {
      if (!(instance instanceof ReplicaInstance)) continue;
      const thread = instance.runningThread;
      if (thread !== undefined && addresses.includes(`${address}:${instance.port}`))
        return { name: instance.name, thread };
    }
    return undefined;
  }

  /** The name of a replica using `directory`, if any. */
  replicaUsing(directory: string): string | undefined {
    let usedBy: string | undefined;
    for (const instance of this.instances.values()) {
      if (instance instanceof ReplicaInstance && instance.directory === directory) usedBy = instance.name;
    }
    return usedBy;
  }

  forget(instance: Instance): void {
    this.instances.delete(instance.name);
    this.counters.instancesDeleted++;
    instance.logs.append('info', `${instance.kind} deleted`, {}, 'instance-manager');
    instance.logs.end();
    instance.updateSequence = ++this.sequence;
    this.emit({ type: 'deleted', instance: instance.view() });
  }

  changed(instance: Instance): void {
    if (this.instances.get(instance.name) !== instance) return;
    instance.updateSequence = ++this.sequence;
    this.emit({ type: 'updated', instance: instance.view() });
  }

  private emit(event: InstanceEvent): void {
    for (const watcher of this.watchers) {
      try {
        watcher(event);
      } catch (error) {
        this.log('error', 'an instance watcher threw', { error: String(error) });
      }
    }
  }
}
