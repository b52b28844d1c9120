/**
 * RecordingHostOperations: a simulated host for tests where the kernel initiator and mounts
 * are out of reach. It keeps iSCSI sessions, SCSI disks (one per target and LUN, appearing
 * on login), filesystems, mounts and paths in memory, behaves as the real commands do
 * (idempotent where they are, failing where they fail), and records every call in `calls`.
 *
 * Faults for the seed's §4-1 cases: `missingTools`, `staleSessionFor(iqn)` (a session left
 * over with no device), `claimByMultipath(device)`, `mountElsewhere(device, path)`.
 */
import path from 'node:path';
import { HornbillError } from '../../errors.ts';
import { ALL_TOOLS, missingToolMessage } from './requirements.ts';
import type {
  FilesystemStats,
  HostOperations,
  HostToolReport,
  IscsiSession,
  IscsiTarget,
  MountEntry,
  MountRequest,
} from './types.ts';

export interface RecordedCall {
  operation: string;
  arguments: unknown[];
}

interface Disk {
  device: string;
  majorMinor: string;
  sizeBytes: number;
  fsType?: string;
  holders: string[];
}

export class RecordingHostOperations implements HostOperations {
  readonly calls: RecordedCall[] = [];
  readonly missingTools = new Set<string>();
  multipathdRunning = false;
  /** Size of the disk a login makes (tests set it to the volume's size). */
  diskSizeBytes = 2 * 1024 ** 3;
  readonly sessions: IscsiSession[] = [];
  readonly disks = new Map<string, Disk>();
  readonly mountTable: MountEntry[] = [];
  readonly paths = new Map<string, 'directory' | 'file'>();
  private nextSid = 1;
  private nextDisk = 0;

  private record(operation: string, ...args: unknown[]): void {
    this.calls.push({ operation, arguments: args });
  }

  private requireTool(tool: string): void {
    if (this.missingTools.has(tool))
      throw new HornbillError('CSI_HOST_TOOL_MISSING', missingToolMessage(tool), { tool });
  }

  /** The operations recorded, by name only (for order checks). */
  operations(): string[] {
    return this.calls.map((call) => call.operation);
  }

  staleSessionFor(target: IscsiTarget): void {
    this.sessions.push({
      sid: this.nextSid++,
      iqn: target.iqn,
      portal: `${target.host}:${target.port}`,
      sessionState: 'FAILED',
      connectionState: 'TRANSPORT WAIT',
      disks: [],
    });
  }

  claimByMultipath(device: string, holder = 'dm-0'): void {
    const disk = [...this.disks.values()].find((candidate) => candidate.device === device);
    if (disk !== undefined) disk.holders.push(holder);
  }

  mountElsewhere(device: string, mountPoint: string): void {
    const disk = [...this.disks.values()].find((candidate) => candidate.device === device);
    this.mountTable.push({
      mountPoint,
      majorMinor: disk?.majorMinor ?? '0:0',
      root: '/',
      fsType: disk?.fsType ?? 'ext4',
      source: device,
      options: ['rw'],
    });
  }

  async checkTools(): Promise<HostToolReport> {
    this.record('checkTools');
    const tools: Record<string, boolean> = {};
    for (const tool of ALL_TOOLS) tools[tool] = !this.missingTools.has(tool);
    return { tools, multipathdRunning: this.multipathdRunning };
  }

  async iscsiSessions(): Promise<IscsiSession[]> {
    this.record('iscsiSessions');
    this.requireTool('iscsiadm');
    return this.sessions.map((session) => ({ ...session, disks: [...session.disks] }));
  }

  async iscsiLogin(target: IscsiTarget): Promise<void> {
    this.record('iscsiLogin', target);
    this.requireTool('iscsiadm');
    const portal = `${target.host}:${target.port}`;
    const key = `${portal}/${target.iqn}/${target.lun}`;
    let disk = this.disks.get(key);
    if (disk === undefined) {
      const letter = String.fromCharCode(98 + this.nextDisk);
      disk = {
        device: `/dev/sd${letter}`,
        majorMinor: `8:${16 * (this.nextDisk + 1)}`,
        sizeBytes: this.diskSizeBytes,
        holders: [],
      };
      this.nextDisk++;
      this.disks.set(key, disk);
    }
    if (this.sessions.some((session) => session.iqn === target.iqn && session.portal === portal)) return;
    this.sessions.push({
      sid: this.nextSid++,
      iqn: target.iqn,
      portal,
      sessionState: 'LOGGED_IN',
      connectionState: 'LOGGED IN',
      disks: [{ lun: target.lun, device: path.basename(disk.device), state: 'running' }],
    });
  }

  async iscsiLogout(target: Pick<IscsiTarget, 'iqn'> & Partial<IscsiTarget>): Promise<void> {
    this.record('iscsiLogout', target);
    this.requireTool('iscsiadm');
    for (let index = this.sessions.length - 1; index >= 0; index--)
      if (this.sessions[index].iqn === target.iqn) this.sessions.splice(index, 1);
  }

  async iscsiRescan(target: IscsiTarget): Promise<void> {
    this.record('iscsiRescan', target);
    const disk = this.disks.get(`${target.host}:${target.port}/${target.iqn}/${target.lun}`);
    if (disk !== undefined) disk.sizeBytes = this.diskSizeBytes;
  }

  async findDevice(target: IscsiTarget, timeoutMs: number): Promise<string | undefined> {
    this.record('findDevice', target, timeoutMs);
    const portal = `${target.host}:${target.port}`;
    const session = this.sessions.find(
      (candidate) =>
        candidate.iqn === target.iqn && candidate.portal === portal && candidate.sessionState === 'LOGGED_IN',
    );
    if (session === undefined) return undefined;
    return this.disks.get(`${portal}/${target.iqn}/${target.lun}`)?.device;
  }

  private disk(device: string): Disk {
    const disk = [...this.disks.values()].find((candidate) => candidate.device === device);
    if (disk === undefined)
      throw new HornbillError('CSI_HOST_COMMAND_FAILED', `${device}: no such block device`, { device });
    return disk;
  }

  async deviceHolders(device: string): Promise<string[]> {
    this.record('deviceHolders', device);
    return [...this.disk(device).holders];
  }

  async deviceNumber(device: string): Promise<string> {
    this.record('deviceNumber', device);
    return this.disk(device).majorMinor;
  }

  async deviceSizeBytes(device: string): Promise<number> {
    this.record('deviceSizeBytes', device);
    return this.disk(device).sizeBytes;
  }

  async filesystemType(device: string): Promise<string | undefined> {
    this.record('filesystemType', device);
    this.requireTool('blkid');
    return this.disk(device).fsType;
  }

  async makeFilesystem(device: string, fsType: string, extraArguments: string[]): Promise<void> {
    this.record('makeFilesystem', device, fsType, extraArguments);
    this.requireTool(`mkfs.${fsType}`);
    this.disk(device).fsType = fsType;
  }

  async resizeFilesystem(device: string, mountPoint: string, fsType: string): Promise<void> {
    this.record('resizeFilesystem', device, mountPoint, fsType);
    this.requireTool(fsType === 'xfs' ? 'xfs_growfs' : 'resize2fs');
  }

  async mount(request: MountRequest): Promise<void> {
    this.record('mount', request);
    if (request.fsType === 'nfs4') this.requireTool('mount.nfs4');
    if (this.paths.get(request.target) === undefined)
      throw new HornbillError(
        'CSI_HOST_COMMAND_FAILED',
        `mount: ${request.target}: mount point does not exist.`,
        request as never,
      );
    const bind = request.options.includes('bind');
    const from = bind ? this.mountTable.findLast((entry) => entry.mountPoint === request.source) : undefined;
    const disk = [...this.disks.values()].find((candidate) => candidate.device === request.source);
    if (
      !bind &&
      disk !== undefined &&
      this.mountTable.some((entry) => entry.majorMinor === disk.majorMinor && entry.root === '/')
    )
      throw new HornbillError(
        'CSI_DEVICE_BUSY',
        `mount: ${request.target}: ${request.source} already mounted or mount point busy.`,
        {
          device: request.source,
        },
      );
    // A bind of a device node shows, as on Linux, the devtmpfs it lives on and the node as root.
    const deviceNode = bind && disk !== undefined;
    this.mountTable.push({
      mountPoint: request.target,
      majorMinor: deviceNode ? '0:5' : (from?.majorMinor ?? disk?.majorMinor ?? '0:99'),
      root: deviceNode ? `/${path.basename(request.source)}` : (from?.root ?? '/'),
      fsType: deviceNode ? 'devtmpfs' : (from?.fsType ?? request.fsType ?? 'none'),
      source: deviceNode ? 'udev' : (from?.source ?? request.source),
      options: request.options.filter((option) => option !== 'bind'),
    });
  }

  async unmount(target: string): Promise<void> {
    this.record('unmount', target);
    const index = this.mountTable.findLastIndex((entry) => entry.mountPoint === target);
    if (index < 0)
      throw new HornbillError('CSI_HOST_COMMAND_FAILED', `umount: ${target}: not mounted.`, { target });
    this.mountTable.splice(index, 1);
  }

  async mounts(): Promise<MountEntry[]> {
    this.record('mounts');
    return this.mountTable.map((entry) => ({ ...entry, options: [...entry.options] }));
  }

  async statFilesystem(target: string): Promise<FilesystemStats> {
    this.record('statFilesystem', target);
    const entry = this.mountTable.findLast((candidate) => candidate.mountPoint === target);
    const disk = [...this.disks.values()].find((candidate) => candidate.majorMinor === entry?.majorMinor);
    const totalBytes = disk?.sizeBytes ?? 10 * 1024 ** 3;
    return {
      totalBytes,
      availableBytes: totalBytes - 1024 * 1024,
      usedBytes: 1024 * 1024,
      totalInodes: 65_536,
      freeInodes: 65_525,
      usedInodes: 11,
    };
  }

  async pathKind(target: string): Promise<'directory' | 'file' | 'block' | 'other' | undefined> {
    this.record('pathKind', target);
    const entry = this.mountTable.findLast((candidate) => candidate.mountPoint === target);
    if (entry?.fsType === 'devtmpfs') return 'block';
    return this.paths.get(target);
  }

  async makeDirectory(target: string): Promise<void> {
    this.record('makeDirectory', target);
    if (this.paths.get(target) === 'file')
      throw new HornbillError('CSI_HOST_COMMAND_FAILED', `mkdir: ${target}: is a file`, { target });
    this.paths.set(target, 'directory');
  }

  async makeFile(target: string): Promise<void> {
    this.record('makeFile', target);
    if (this.paths.get(target) === 'directory')
      throw new HornbillError('CSI_HOST_COMMAND_FAILED', `${target}: is a directory`, { target });
    this.paths.set(target, 'file');
  }

  async removePath(target: string): Promise<void> {
    this.record('removePath', target);
    if (this.mountTable.some((entry) => entry.mountPoint === target))
      throw new HornbillError('CSI_HOST_COMMAND_FAILED', `rm: ${target}: device or resource busy`, {
        target,
      });
    this.paths.delete(target);
  }
}
