/**
 * HostOperations: everything the CSI node service does to the host — iSCSI sessions,
 * devices, filesystems, mounts, paths — behind one interface. `LinuxHostOperations`
 * (linux.ts) runs the real commands with timeouts and parses their output and errors;
 * `RecordingHostOperations` (recording.ts) simulates a host in memory and records every
 * call, for tests on machines without a kernel iSCSI initiator or the right to mount.
 *
 * Every method fails with a HornbillError: CSI_HOST_TOOL_MISSING, CSI_HOST_COMMAND_FAILED,
 * CSI_HOST_COMMAND_TIMEOUT, CSI_ISCSI_LOGIN_FAILED, CSI_DEVICE_BUSY.
 */

/** An iSCSI target as the engine serves it: `iscsi://HOST:PORT/IQN/LUN`. */
export interface IscsiTarget {
  host: string;
  port: number;
  iqn: string;
  lun: number;
}

/** One session of the host's initiator (`iscsiadm -m session -P 3`). */
export interface IscsiSession {
  sid: number;
  iqn: string;
  /** `HOST:PORT` of the current portal. */
  portal: string;
  /** `LOGGED_IN`, `FAILED`, `FREE`, … (iSCSI Session State). */
  sessionState: string;
  /** `LOGGED IN`, `TRANSPORT WAIT`, … (iSCSI Connection State). */
  connectionState: string;
  /** `sdb` for each attached SCSI disk, by LUN. */
  disks: { lun: number; device: string; state: string }[];
}

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  mountPoint: string;
  /** `8:16` */
  majorMinor: string;
  /** The path inside the source filesystem (`/` for a whole-device mount). */
  root: string;
  fsType: string;
  source: string;
  options: string[];
}

export interface FilesystemStats {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  totalInodes: number;
  freeInodes: number;
  usedInodes: number;
}

/** Which host tools the node service can use (RequiredPackages, NFSClientInstalled, Multipathd). */
export interface HostToolReport {
  /** Command → found. */
  tools: Record<string, boolean>;
  /** multipathd is running (it may claim iSCSI devices). */
  multipathdRunning: boolean;
}

export interface MountRequest {
  source: string;
  target: string;
  /** Filesystem type; absent for bind mounts. */
  fsType?: string;
  options: string[];
}

export interface HostOperations {
  /** Which tools are installed and whether multipathd runs. */
  checkTools(): Promise<HostToolReport>;
  iscsiSessions(): Promise<IscsiSession[]>;
  /** Creates the node record and logs in; a session that exists already is not an error. */
  iscsiLogin(target: IscsiTarget): Promise<void>;
  /** Logs out of every session to the target and deletes its node record; none is not an error. */
  iscsiLogout(target: Pick<IscsiTarget, 'iqn'> & Partial<IscsiTarget>): Promise<void>;
  /** Rescans the sessions to the target (after the volume grew). */
  iscsiRescan(target: IscsiTarget): Promise<void>;
  /** The `/dev/disk/by-path/ip-HOST:PORT-iscsi-IQN-lun-N` link's device (`/dev/sdb`), waiting up to `timeoutMs`. */
  findDevice(target: IscsiTarget, timeoutMs: number): Promise<string | undefined>;
  /** Devices holding this one (`dm-3` when multipathd claimed it). */
  deviceHolders(device: string): Promise<string[]>;
  /** `major:minor` of a block device. */
  deviceNumber(device: string): Promise<string>;
  deviceSizeBytes(device: string): Promise<number>;
  /** The filesystem type on the device (blkid), or undefined when it has none. */
  filesystemType(device: string): Promise<string | undefined>;
  makeFilesystem(device: string, fsType: string, extraArguments: string[]): Promise<void>;
  resizeFilesystem(device: string, mountPoint: string, fsType: string): Promise<void>;
  mount(request: MountRequest): Promise<void>;
  unmount(target: string): Promise<void>;
  mounts(): Promise<MountEntry[]>;
  statFilesystem(path: string): Promise<FilesystemStats>;
  /** 'directory', 'file', 'block', 'other', or undefined when nothing is there. */
  pathKind(path: string): Promise<'directory' | 'file' | 'block' | 'other' | undefined>;
  makeDirectory(path: string): Promise<void>;
  /** An empty file (the target of a block bind mount), with its parent directories. */
  makeFile(path: string): Promise<void>;
  /** Removes an empty directory or a file; nothing there is not an error. */
  removePath(path: string): Promise<void>;
}

/** `iscsi://HOST:PORT/IQN/LUN` → target, or undefined. */
export function parseIscsiEndpoint(endpoint: string): IscsiTarget | undefined {
  const match = /^iscsi:\/\/([^/:\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/(iqn\.[^/\s]+)\/(\d{1,5})$/.exec(
    endpoint,
  );
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1], port, iqn: match[3], lun: Number(match[4]) };
}

/** The udev by-path link of a LUN (open-iscsi's naming). */
export function byPathLink(target: IscsiTarget): string {
  return `/dev/disk/by-path/ip-${target.host}:${target.port}-iscsi-${target.iqn}-lun-${target.lun}`;
}
