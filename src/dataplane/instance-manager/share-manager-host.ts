/**
 * The share managers an instance manager hosts (docs/instance-manager.md "Share managers",
 * docs/rwx.md): as Longhorn's instance manager hosts processes, each RWX volume served from
 * this node is a `hornbill share-manager` child process (share-manager-process.ts) with the
 * lifecycle engines and replicas have — starting → running → stopping → stopped, `error`
 * when a start fails or a running one exits. A dead one is not restarted by the instance
 * manager: it is reported as `error` and started again by StartShareManager or by the same
 * CreateShareManager (the controller decides; it may move it to another node instead).
 *
 * Share managers are listed by their own RPCs (ListShareManagers, GetShareManager), not by
 * ListInstances / WatchInstances: the controllers' orphan clean-up reads every instance of
 * ListInstances as an engine or a replica, so a third kind there would be deleted as one.
 *
 * Source `device` (the volume's block device, as in Kubernetes) needs host operations that can
 * log in to the engine's iSCSI target and mount (`deviceHost`, given when the instance
 * manager runs with --attach-devices on a host with iscsiadm); the instance manager logs in,
 * finds the LUN's device, formats it once when it carries no filesystem (Longhorn's share
 * manager formats-and-mounts a new volume), and hands it to the share manager, which mounts
 * and exports it; delete logs out. Source `directory` exports `<disk>/share-exports/<volume>`,
 * a plain folder on this node: not the replicated volume (ShareManager condition DataSource).
 */
import fs from 'node:fs/promises';
import type { HostOperations } from '../../csi/host/types.ts';
import { HornbillError } from '../../errors.ts';
import { type Logger, silentLogger } from '../../logging.ts';
import { attachIscsiDevice, detachIscsiDevice } from '../../share-manager/device.ts';
import { shareEndpoint } from '../../share-manager/index.ts';
import { describeError } from './instance.ts';
import { assertTransition, SerialQueue } from './instance-state.ts';
import {
  defaultShareManagerCommand,
  SHARE_MANAGER_STDERR_LINES_KEPT,
  type ShareManagerChild,
  type ShareManagerLauncher,
  type ShareManagerReadyLine,
  spawnShareManager,
} from './share-manager-process.ts';
import {
  type ShareManagerSpec,
  type ShareManagerSpecInput,
  sameShareManagerSpec,
  shareExportDirectory,
  shareManagerArguments,
  shareManagerSpec,
  shareStateDirectory,
} from './share-manager-spec.ts';
import type { InstanceError, InstanceState } from './types.ts';
import { instanceName, volumeName } from './validation.ts';

export const SHARE_MANAGERS_MAX = 128;
const DEVICE_WAIT_MS = 30_000;

export interface ShareManagerView {
  name: string;
  kind: 'share-manager';
  volumeName: string;
  state: InstanceState;
  error: InstanceError | undefined;
  nodeName: string;
  /** The service address and NFS port it serves on. */
  address: string;
  port: number;
  /** `nfs://address:port/volume`. */
  endpoint: string;
  pid: number;
  nfsPid: number;
  source: ShareManagerSpec['source'];
  /** What is exported: the folder, or the device's mount point. */
  exportPath: string;
  /** The block device (source device), once logged in. */
  device: string;
  healthUrl: string;
  leaseBackend: ShareManagerSpec['leaseBackend'];
  leaseFile: string;
  leaseNamespace: string;
  startToReadyMs: number;
  startedAt: string;
  restartCount: number;
  updateSequence: number;
}

export interface ShareManagerHostOptions {
  nodeName: string;
  disks: readonly string[];
  log?: Logger;
  /** Host operations able to attach block devices; absent: only source `directory` is served. */
  deviceHost?: HostOperations;
  /** The command before the share manager's arguments (default: this Node, hornbill, share-manager). */
  command?: string[];
  launcher?: ShareManagerLauncher;
  /** How long a start may take, lease wait included (default 120 s). */
  startTimeoutMs?: number;
  /** SIGTERM → SIGKILL (default 15 s). */
  stopTimeoutMs?: number;
  /** Called after every change of a view (the sequence orders them). */
  changed?: (view: ShareManagerView) => void;
}

class HostedShareManager {
  readonly spec: ShareManagerSpec;
  readonly queue = new SerialQueue();
  readonly stderr: string[] = [];
  state: InstanceState = 'stopped';
  error: InstanceError | undefined;
  child: ShareManagerChild | undefined;
  ready: ShareManagerReadyLine | undefined;
  device = '';
  starts = 0;
  startedAt = '';
  updateSequence = 0;

  constructor(spec: ShareManagerSpec) {
    this.spec = spec;
  }
}

export class ShareManagerHost {
  readonly counters = { shareManagersCreated: 0, shareManagerFailures: 0, shareManagersDeleted: 0 };
  private readonly options: ShareManagerHostOptions;
  private readonly log: Logger;
  private readonly managers = new Map<string, HostedShareManager>();
  private sequence = 0;
  private closing = false;

  constructor(options: ShareManagerHostOptions) {
    this.options = options;
    this.log = options.log ?? silentLogger;
  }

  /** Whether source `device` can be served here. */
  get canAttachDevices(): boolean {
    return this.options.deviceHost !== undefined;
  }

  get size(): number {
    return this.managers.size;
  }

  /** Creates and starts it; the same spec again returns it (started again when stopped or failed). */
  async create(input: ShareManagerSpecInput): Promise<ShareManagerView> {
    this.checkOpen();
    const spec = shareManagerSpec(input, this.options.disks);
    if (spec.source === 'device' && !this.canAttachDevices) {
      throw new HornbillError(
        'SHARE_MANAGER_DEVICE_UNAVAILABLE',
        `node ${this.options.nodeName} cannot attach block devices (no --attach-devices, or no iscsiadm); use source directory`,
        { field: 'source', node: this.options.nodeName },
      );
    }
    const existing = this.managers.get(spec.name);
    if (existing !== undefined) {
      if (!sameShareManagerSpec(existing.spec, spec)) {
        throw new HornbillError(
          'INSTANCE_EXISTS',
          `share manager ${spec.name} already exists with another spec`,
          {
            name: spec.name,
            kind: 'share-manager',
            existing: this.view(existing),
          },
        );
      }
      await this.start(spec.name);
      return this.view(existing);
    }
    for (const other of this.managers.values()) {
      const sameVolume = other.spec.volumeName === spec.volumeName;
      const sameSocket = other.spec.address === spec.address && other.spec.port === spec.port;
      if (sameVolume || sameSocket) {
        throw new HornbillError(
          'INSTANCE_CONFLICT',
          sameVolume
            ? `share manager ${other.spec.name} already serves volume ${spec.volumeName} on this node`
            : `share manager ${other.spec.name} already serves on ${spec.address}:${spec.port}`,
          { name: spec.name, usedBy: other.spec.name },
        );
      }
    }
    if (this.managers.size >= SHARE_MANAGERS_MAX)
      throw new HornbillError(
        'INSTANCE_LIMIT_REACHED',
        `this node already hosts ${SHARE_MANAGERS_MAX} share managers`,
        {
          limit: SHARE_MANAGERS_MAX,
        },
      );
    const hosted = new HostedShareManager(spec);
    this.managers.set(spec.name, hosted);
    this.counters.shareManagersCreated++;
    await this.start(spec.name);
    return this.view(hosted);
  }

  /** Starts a stopped or failed share manager; a running one is left as it is. */
  async start(name: unknown): Promise<ShareManagerView> {
    this.checkOpen();
    const hosted = this.find(name);
    await hosted.queue.run(() => this.run(hosted));
    if (hosted.state === 'error' && hosted.error !== undefined)
      throw new HornbillError(
        'INSTANCE_FAILED',
        `share manager ${hosted.spec.name}: ${hosted.error.message}`,
        {
          name: hosted.spec.name,
          error: hosted.error,
        },
      );
    return this.view(hosted);
  }

  async stop(name: unknown): Promise<ShareManagerView> {
    const hosted = this.find(name);
    await hosted.queue.run(() => this.halt(hosted));
    return this.view(hosted);
  }

  /**
   * Stops and forgets it; `removeData` also deletes its state folder and (directory source)
   * its export folder. With `removeData` and a `volume` when none of this name runs here, the
   * share folders of that volume on this node's disks go (one that ran as a Pod of its own
   * left them on the node).
   */
  async delete(
    name: unknown,
    removeData = false,
    volume?: unknown,
  ): Promise<{ found: boolean; dataRemoved: boolean }> {
    const checked = instanceName(name);
    const hosted = this.managers.get(checked);
    if (hosted === undefined) {
      if (!removeData || volume === undefined || volume === '') return { found: false, dataRemoved: false };
      const checkedVolume = volumeName(volume);
      for (const disk of this.options.disks) {
        await fs.rm(shareStateDirectory(disk, checkedVolume), { recursive: true, force: true });
        await fs.rm(shareExportDirectory(disk, checkedVolume), { recursive: true, force: true });
      }
      this.log('info', 'share folders of a share manager hosted elsewhere removed', {
        volume: checkedVolume,
      });
      return { found: false, dataRemoved: true };
    }
    return hosted.queue.run(async () => {
      if (this.managers.get(checked) !== hosted) return { found: false, dataRemoved: false };
      await this.halt(hosted);
      this.managers.delete(checked);
      this.counters.shareManagersDeleted++;
      if (removeData) {
        await fs.rm(shareStateDirectory(hosted.spec.diskPath, hosted.spec.volumeName), {
          recursive: true,
          force: true,
        });
        if (hosted.spec.source === 'directory')
          await fs.rm(shareExportDirectory(hosted.spec.diskPath, hosted.spec.volumeName), {
            recursive: true,
            force: true,
          });
      }
      this.log('info', 'share manager deleted', { name: checked, removeData });
      hosted.updateSequence = ++this.sequence;
      return { found: true, dataRemoved: removeData };
    });
  }

  get(name: unknown): ShareManagerView {
    return this.view(this.find(name));
  }

  list(): ShareManagerView[] {
    return [...this.managers.values()]
      .map((hosted) => this.view(hosted))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The kept stderr lines of one share manager (its JSON log records). */
  stderrOf(name: unknown): string[] {
    return [...this.find(name).stderr];
  }

  /** Stops every share manager (instance manager shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.managers.values()].map((hosted) =>
        hosted.queue
          .run(() => this.halt(hosted))
          .catch((error) =>
            this.log('error', 'stopping a share manager failed', {
              name: hosted.spec.name,
              error: String(error),
            }),
          ),
      ),
    );
  }

  // ── internals ────────────────────────────────────────────────────────────────────────

  private async run(hosted: HostedShareManager): Promise<void> {
    if (hosted.state === 'running' || this.closing) return;
    this.setState(hosted, 'starting');
    const { spec } = hosted;
    let child: ShareManagerChild | undefined;
    try {
      await fs.mkdir(shareStateDirectory(spec.diskPath, spec.volumeName), { recursive: true });
      if (spec.source === 'directory')
        await fs.mkdir(shareExportDirectory(spec.diskPath, spec.volumeName), { recursive: true });
      else hosted.device = await this.attachDevice(spec);
      const argv = [
        ...(this.options.command ?? defaultShareManagerCommand()),
        ...shareManagerArguments(spec, { nodeName: this.options.nodeName, device: hosted.device }),
      ];
      const launch = this.options.launcher ?? spawnShareManager;
      child = launch(argv, (line) => this.keepStderr(hosted, line));
      hosted.child = child;
      this.log('info', 'share manager spawned', {
        name: spec.name,
        pid: child.pid,
        address: spec.address,
        port: spec.port,
      });
      const timeoutMs = this.options.startTimeoutMs ?? 120_000;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new HornbillError('INSTANCE_FAILED', `the share manager was not ready within ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      });
      try {
        hosted.ready = await Promise.race([child.ready, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      if (child !== undefined) await child.stop(this.options.stopTimeoutMs ?? 15_000);
      hosted.child = undefined;
      this.counters.shareManagerFailures++;
      this.setState(hosted, 'error', error);
      return;
    }
    this.setState(hosted, 'running');
    const running = child;
    void running.exited.then((exit) => {
      if (hosted.child !== running || hosted.state !== 'running') return;
      hosted.child = undefined;
      this.counters.shareManagerFailures++;
      const last = [...hosted.stderr].reverse().find((line) => line.startsWith('hornbill: '));
      const how = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
      this.setState(
        hosted,
        'error',
        new HornbillError('INSTANCE_FAILED', `the share manager exited (${how})${last ? `: ${last}` : ''}`),
      );
    });
  }

  private async halt(hosted: HostedShareManager): Promise<void> {
    if (hosted.state === 'stopped') return;
    if (hosted.state === 'error') {
      await this.detachDevice(hosted);
      this.setState(hosted, 'stopped');
      return;
    }
    this.setState(hosted, 'stopping');
    const child = hosted.child;
    hosted.child = undefined;
    if (child !== undefined) await child.stop(this.options.stopTimeoutMs ?? 15_000);
    await this.detachDevice(hosted);
    this.setState(hosted, 'stopped');
  }

  /** Logs in to the engine's target, finds the LUN's device, formats it when it has no filesystem. */
  private attachDevice(spec: ShareManagerSpec): Promise<string> {
    return attachIscsiDevice(
      this.options.deviceHost!,
      spec.deviceEndpoint,
      spec.fsType,
      this.log,
      DEVICE_WAIT_MS,
    );
  }

  private async detachDevice(hosted: HostedShareManager): Promise<void> {
    if (hosted.spec.source !== 'device' || this.options.deviceHost === undefined) return;
    await detachIscsiDevice(this.options.deviceHost, hosted.spec.deviceEndpoint);
    hosted.device = '';
  }

  private setState(hosted: HostedShareManager, next: InstanceState, error?: unknown): void {
    const previous = hosted.state;
    if (previous === next) return;
    assertTransition(hosted.spec.name, previous, next);
    hosted.state = next;
    if (next === 'starting') {
      hosted.error = undefined;
      hosted.ready = undefined;
      hosted.starts++;
      hosted.startedAt = new Date().toISOString();
    }
    if (error !== undefined) hosted.error = describeError(error);
    this.log(next === 'error' ? 'error' : 'info', `share manager ${next}`, {
      name: hosted.spec.name,
      from: previous,
      ...(hosted.error === undefined || next !== 'error' ? {} : { error: hosted.error }),
    });
    hosted.updateSequence = ++this.sequence;
    this.options.changed?.(this.view(hosted));
  }

  /** Keeps the child's stderr line; its warnings and errors also go to this process's log. */
  private keepStderr(hosted: HostedShareManager, line: string): void {
    hosted.stderr.push(line);
    if (hosted.stderr.length > SHARE_MANAGER_STDERR_LINES_KEPT) hosted.stderr.shift();
    let record: Record<string, unknown> | undefined;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      if (line.startsWith('hornbill: ')) this.log('error', line, { shareManager: hosted.spec.name });
      return;
    }
    if (record?.level === 'warn' || record?.level === 'error') {
      const { level, message, time: _time, component: _component, ...details } = record;
      this.log(level, String(message), { shareManager: hosted.spec.name, ...details });
    }
  }

  private view(hosted: HostedShareManager): ShareManagerView {
    const { spec } = hosted;
    const exportPath =
      spec.source === 'directory'
        ? shareExportDirectory(spec.diskPath, spec.volumeName)
        : `${shareStateDirectory(spec.diskPath, spec.volumeName)}/mount`;
    return {
      name: spec.name,
      kind: 'share-manager',
      volumeName: spec.volumeName,
      state: hosted.state,
      error: hosted.error === undefined ? undefined : { ...hosted.error },
      nodeName: this.options.nodeName,
      address: spec.address,
      port: spec.port,
      endpoint: shareEndpoint(spec.address, spec.port, spec.volumeName),
      pid: hosted.state === 'running' ? (hosted.child?.pid ?? 0) : 0,
      nfsPid: hosted.state === 'running' ? (hosted.ready?.nfsPid ?? 0) : 0,
      source: spec.source,
      exportPath,
      device: hosted.device,
      healthUrl: hosted.state === 'running' ? (hosted.ready?.health ?? '') : '',
      leaseBackend: spec.leaseBackend,
      leaseFile: spec.leaseFile,
      leaseNamespace: spec.leaseNamespace,
      startToReadyMs: hosted.ready?.startToReadyMs ?? 0,
      startedAt: hosted.startedAt,
      restartCount: Math.max(0, hosted.starts - 1),
      updateSequence: hosted.updateSequence,
    };
  }

  private find(name: unknown): HostedShareManager {
    const checked = instanceName(name);
    const hosted = this.managers.get(checked);
    if (hosted === undefined)
      throw new HornbillError('INSTANCE_NOT_FOUND', `no share manager named ${checked}`, {
        name: checked,
        kind: 'share-manager',
      });
    return hosted;
  }

  private checkOpen(): void {
    if (this.closing) throw new HornbillError('INSTANCE_MANAGER_CLOSED', 'the instance manager is stopping');
  }
}
