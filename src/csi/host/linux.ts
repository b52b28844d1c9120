/**
 * LinuxHostOperations: HostOperations by running the real tools — iscsiadm, blkid, mkfs,
 * mount, umount, resize2fs, xfs_growfs — each with a timeout (killed past it:
 * CSI_HOST_COMMAND_TIMEOUT), reading /proc, /sys and /dev for the rest, and parsing the
 * tools' failures into coded errors (parsers.ts).
 *
 * In a pod, `hostNamespaces: true` runs the commands in the host's mount and network
 * namespaces (`nsenter --target 1 --mount --net`, needs hostPID), so that iscsiadm talks to
 * the host's iscsid and mounts land where kubelet sees them — as Longhorn does.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HornbillError } from '../../errors.ts';
import {
  classifyMountFailure,
  ISCSI_ERR_NO_OBJS_FOUND,
  ISCSI_ERR_SESS_EXISTS,
  parseIscsiadmFailure,
  parseIscsiSessions,
  parseMountInfo,
} from './parsers.ts';
import { ALL_TOOLS, missingToolMessage } from './requirements.ts';
import {
  byPathLink,
  type FilesystemStats,
  type HostOperations,
  type HostToolReport,
  type IscsiSession,
  type IscsiTarget,
  type MountEntry,
  type MountRequest,
} from './types.ts';

export interface LinuxHostOptions {
  /** Run commands in PID 1's mount and network namespaces (default false). */
  hostNamespaces?: boolean;
  /** Per command (default 60 s; mkfs of a large volume may need more: `mkfsTimeoutMs`). */
  commandTimeoutMs?: number;
  /** mkfs (default 10 min). */
  mkfsTimeoutMs?: number;
  /** Folders searched for tools (default the usual sbin and bin folders). */
  searchPath?: string[];
}

interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/** Output kept from one command (errors quote it). */
const OUTPUT_BYTES_MAX = 4 * 1024 * 1024;

export class LinuxHostOperations implements HostOperations {
  private readonly options: Required<LinuxHostOptions>;

  constructor(options: LinuxHostOptions = {}) {
    this.options = {
      hostNamespaces: options.hostNamespaces ?? false,
      commandTimeoutMs: options.commandTimeoutMs ?? 60_000,
      mkfsTimeoutMs: options.mkfsTimeoutMs ?? 600_000,
      searchPath: options.searchPath ?? DEFAULT_SEARCH_PATH,
    };
  }

  /** Runs a tool; a non-zero exit is returned, not thrown; a missing tool or a timeout is thrown. */
  async run(tool: string, args: string[], timeoutMs = this.options.commandTimeoutMs): Promise<CommandResult> {
    const [file, argv] = this.options.hostNamespaces
      ? ['nsenter', ['--target', '1', '--mount', '--net', '--', tool, ...args]]
      : [tool, args];
    const environment = { ...process.env, PATH: this.options.searchPath.join(':'), LC_ALL: 'C' };
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        argv,
        {
          timeout: timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: OUTPUT_BYTES_MAX,
          env: environment,
          encoding: 'utf8',
        },
        (error, stdout, stderr) => {
          if (error === null) return resolve({ exitCode: 0, stdout, stderr });
          const failure = error as NodeJS.ErrnoException & { killed?: boolean; code?: string | number };
          if (failure.code === 'ENOENT')
            return reject(new HornbillError('CSI_HOST_TOOL_MISSING', missingToolMessage(tool), { tool }));
          if (failure.killed)
            return reject(
              new HornbillError(
                'CSI_HOST_COMMAND_TIMEOUT',
                `${tool} ${args.join(' ')} did not finish in ${timeoutMs} ms`,
                {
                  tool,
                  args,
                  timeoutMs,
                },
              ),
            );
          resolve({ exitCode: typeof failure.code === 'number' ? failure.code : 1, stdout, stderr });
        },
      );
      child.stdin?.end();
    });
  }

  private failed(
    tool: string,
    args: string[],
    result: CommandResult,
    code: 'CSI_HOST_COMMAND_FAILED' | 'CSI_DEVICE_BUSY' = 'CSI_HOST_COMMAND_FAILED',
  ): HornbillError {
    const output = (result.stderr.trim() || result.stdout.trim()).slice(0, 2000);
    return new HornbillError(code, `${tool} ${args.join(' ')} failed (exit ${result.exitCode}): ${output}`, {
      tool,
      args,
      exitCode: result.exitCode,
    });
  }

  private async iscsiadm(
    args: string[],
    operation: 'login' | 'other',
    tolerated: number[] = [],
  ): Promise<CommandResult> {
    const result = await this.run('iscsiadm', args);
    if (result.exitCode === 0 || tolerated.includes(result.exitCode)) return result;
    const failure = parseIscsiadmFailure(result.exitCode, result.stderr, operation);
    const fix = failure.fix === undefined ? '' : `. Fix: ${failure.fix}`;
    throw new HornbillError(
      failure.code,
      `iscsiadm ${args.join(' ')}: ${failure.reason} (${failure.name})${fix}`,
      {
        args,
        exitCode: failure.exitCode,
        iscsiError: failure.name,
        initiatorError: failure.initiatorError,
      },
    );
  }

  async checkTools(): Promise<HostToolReport> {
    const tools: Record<string, boolean> = {};
    for (const tool of ALL_TOOLS) tools[tool] = await this.toolExists(tool);
    return { tools, multipathdRunning: await this.processRunning('multipathd') };
  }

  private async toolExists(tool: string): Promise<boolean> {
    const root = this.options.hostNamespaces ? '/proc/1/root' : '';
    for (const folder of this.options.searchPath) {
      try {
        await fs.access(`${root}${folder}/${tool}`, fs.constants.X_OK);
        return true;
      } catch {
        // Not in this folder.
      }
    }
    return false;
  }

  private async processRunning(name: string): Promise<boolean> {
    let entries: string[];
    try {
      entries = await fs.readdir('/proc');
    } catch {
      return false;
    }
    for (const entry of entries) {
      if (!/^\d+$/.test(entry)) continue;
      const command = await fs.readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
      if (command.trim() === name) return true;
    }
    return false;
  }

  async iscsiSessions(): Promise<IscsiSession[]> {
    const result = await this.iscsiadm(['-m', 'session', '-P', '3'], 'other', [ISCSI_ERR_NO_OBJS_FOUND]);
    return result.exitCode === ISCSI_ERR_NO_OBJS_FOUND ? [] : parseIscsiSessions(result.stdout);
  }

  async iscsiLogin(target: IscsiTarget): Promise<void> {
    const portal = `${target.host}:${target.port}`;
    await this.iscsiadm(['-m', 'discovery', '-t', 'sendtargets', '-p', portal], 'login');
    await this.iscsiadm(['-m', 'node', '-T', target.iqn, '-p', portal, '--login'], 'login', [
      ISCSI_ERR_SESS_EXISTS,
    ]);
  }

  async iscsiLogout(target: Pick<IscsiTarget, 'iqn'> & Partial<IscsiTarget>): Promise<void> {
    const portal =
      target.host !== undefined && target.port !== undefined ? ['-p', `${target.host}:${target.port}`] : [];
    await this.iscsiadm(['-m', 'node', '-T', target.iqn, ...portal, '--logout'], 'other', [
      ISCSI_ERR_NO_OBJS_FOUND,
    ]);
    await this.iscsiadm(['-m', 'node', '-T', target.iqn, ...portal, '-o', 'delete'], 'other', [
      ISCSI_ERR_NO_OBJS_FOUND,
    ]);
  }

  async iscsiRescan(target: IscsiTarget): Promise<void> {
    await this.iscsiadm(
      ['-m', 'node', '-T', target.iqn, '-p', `${target.host}:${target.port}`, '-R'],
      'other',
    );
  }

  async findDevice(target: IscsiTarget, timeoutMs: number): Promise<string | undefined> {
    const link = byPathLink(target);
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await fs.realpath(link);
      } catch {
        if (Date.now() >= end) return undefined;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  async deviceHolders(device: string): Promise<string[]> {
    try {
      return (await fs.readdir(`/sys/class/block/${path.basename(device)}/holders`)).sort();
    } catch {
      return [];
    }
  }

  async deviceNumber(device: string): Promise<string> {
    const fromSys = await fs
      .readFile(`/sys/class/block/${path.basename(device)}/dev`, 'utf8')
      .catch(() => '');
    if (/^\d+:\d+\s*$/.test(fromSys)) return fromSys.trim();
    const stats = await fs.stat(device);
    const dev = stats.isBlockDevice() ? stats.rdev : stats.dev;
    // glibc's gnu_dev_major / gnu_dev_minor.
    const major = ((dev >>> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
    const minor = (dev & 0xff) | ((dev >>> 12) & ~0xff);
    return `${major}:${minor >>> 0}`;
  }

  async deviceSizeBytes(device: string): Promise<number> {
    const sectors = await fs
      .readFile(`/sys/class/block/${path.basename(device)}/size`, 'utf8')
      .catch(() => '');
    if (/^\d+\s*$/.test(sectors)) return Number(sectors.trim()) * 512;
    return (await fs.stat(device)).size;
  }

  async filesystemType(device: string): Promise<string | undefined> {
    const args = ['-p', '-s', 'TYPE', '-o', 'value', device];
    const result = await this.run('blkid', args);
    // Exit 2: no signature found (an empty device).
    if (result.exitCode === 2) return undefined;
    if (result.exitCode !== 0) throw this.failed('blkid', args, result);
    const type = result.stdout.trim();
    return type === '' ? undefined : type;
  }

  async makeFilesystem(device: string, fsType: string, extraArguments: string[]): Promise<void> {
    const tool = `mkfs.${fsType}`;
    const args = [...extraArguments, device];
    const result = await this.run(tool, args, this.options.mkfsTimeoutMs);
    if (result.exitCode !== 0) throw this.failed(tool, args, result);
  }

  async resizeFilesystem(device: string, mountPoint: string, fsType: string): Promise<void> {
    const [tool, args] = fsType === 'xfs' ? ['xfs_growfs', [mountPoint]] : ['resize2fs', [device]];
    const result = await this.run(tool, args, this.options.mkfsTimeoutMs);
    if (result.exitCode !== 0) throw this.failed(tool, args, result);
  }

  async mount(request: MountRequest): Promise<void> {
    const bind = request.options.includes('bind');
    const options = request.options.filter((option) => option !== 'bind');
    const commands: string[][] = bind
      ? [['--bind', request.source, request.target]]
      : [
          [
            ...(request.fsType ? ['-t', request.fsType] : []),
            ...(options.length > 0 ? ['-o', options.join(',')] : []),
            request.source,
            request.target,
          ],
        ];
    // A bind mount takes its options (ro, …) only on a remount.
    if (bind && options.length > 0)
      commands.push(['-o', ['remount', 'bind', ...options].join(','), request.target]);
    for (const args of commands) {
      const result = await this.run('mount', args);
      if (result.exitCode !== 0)
        throw this.failed(
          'mount',
          args,
          result,
          classifyMountFailure(result.stderr).code === 'CSI_DEVICE_BUSY'
            ? 'CSI_DEVICE_BUSY'
            : 'CSI_HOST_COMMAND_FAILED',
        );
    }
  }

  async unmount(target: string): Promise<void> {
    const result = await this.run('umount', [target]);
    if (result.exitCode === 0) return;
    const failure = classifyMountFailure(result.stderr);
    if (failure.notMounted) return;
    throw this.failed(
      'umount',
      [target],
      result,
      failure.code === 'CSI_DEVICE_BUSY' ? 'CSI_DEVICE_BUSY' : 'CSI_HOST_COMMAND_FAILED',
    );
  }

  async mounts(): Promise<MountEntry[]> {
    const file = this.options.hostNamespaces ? '/proc/1/mountinfo' : '/proc/self/mountinfo';
    return parseMountInfo(await fs.readFile(file, 'utf8'));
  }

  async statFilesystem(target: string): Promise<FilesystemStats> {
    const stats = await fs.statfs(target);
    return {
      totalBytes: stats.blocks * stats.bsize,
      availableBytes: stats.bavail * stats.bsize,
      usedBytes: (stats.blocks - stats.bfree) * stats.bsize,
      totalInodes: stats.files,
      freeInodes: stats.ffree,
      usedInodes: stats.files - stats.ffree,
    };
  }

  async pathKind(target: string): Promise<'directory' | 'file' | 'block' | 'other' | undefined> {
    try {
      const stats = await fs.stat(target);
      if (stats.isDirectory()) return 'directory';
      if (stats.isBlockDevice()) return 'block';
      return stats.isFile() ? 'file' : 'other';
    } catch {
      return undefined;
    }
  }

  async makeDirectory(target: string): Promise<void> {
    await fs.mkdir(target, { recursive: true, mode: 0o750 });
  }

  async makeFile(target: string): Promise<void> {
    await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o750 });
    await (await fs.open(target, 'a', 0o640)).close();
  }

  async removePath(target: string): Promise<void> {
    try {
      const stats = await fs.lstat(target);
      if (stats.isDirectory()) await fs.rmdir(target);
      else await fs.unlink(target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new HornbillError(
        'CSI_HOST_COMMAND_FAILED',
        `cannot remove ${target}: ${(error as Error).message}`,
        { target },
      );
    }
  }
}
