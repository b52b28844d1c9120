import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  freePort,
  onCleanUp,
  type Server,
  startHornbill,
  stopChild,
  throwIfAborted,
  waitForPort,
} from './processes.ts';

/**
 * The servers of the comparison, started the way ../shared/peers/run-baselines.sh starts
 * them on this machine: tgtd in a private mount namespace (its control socket lives in
 * /run, bound to a temp folder) and stopped by deleting its target; qemu-nbd serving a raw
 * file; Hornbill replicas and an engine as `hornbill` processes on 127.0.0.1.
 */

export const TGT_IQN = 'iqn.2024-01.local.hornbill-compare:tgt1';

export interface Endpoint {
  /** For `hornbill bench --target` and fio's nbd engine. */
  url: string;
  stop(): Promise<void>;
}

function sparseFile(file: string, sizeBytes: number): void {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeBytes);
}

/** tgtd with one file-backed LUN (LUN 1, bstype rdwr) of `sizeBytes`. */
export async function startTgtd(work: string, sizeBytes: number): Promise<Endpoint> {
  const run = path.join(work, 'tgtd-run');
  fs.mkdirSync(run, { recursive: true });
  const lun = path.join(work, 'tgt-lun.img');
  sparseFile(lun, sizeBytes);
  const port = await freePort();
  throwIfAborted();
  const daemon: ChildProcess = spawn(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount --bind '${run}' /run && exec tgtd -f --iscsi portal=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  daemon.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const tgtadm = (...args: string[]) =>
    spawnSync('nsenter', ['-t', String(daemon.pid), '-m', 'tgtadm', ...args], { encoding: 'utf8' });
  const deleteTarget = () => {
    // tgtd ignores SIGTERM while it has targets: delete the target, then the system.
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', '1');
    tgtadm('--op', 'delete', '--mode', 'system');
  };
  const stop = async () => {
    forget();
    if (daemon.exitCode === null && daemon.signalCode === null) deleteTarget();
    await stopChild(daemon, 2000);
    fs.rmSync(lun, { force: true });
  };
  const forget = onCleanUp('tgtd', stop, () => {
    deleteTarget();
    daemon.kill('SIGKILL');
  });
  if (!(await waitForPort(port, 10_000))) {
    await stop();
    throw new Error(`tgtd did not start (it needs root for its private mount namespace): ${stderr}`);
  }
  const steps = [
    ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '--targetname', TGT_IQN],
    [
      '--lld',
      'iscsi',
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      '1',
      '--bstype',
      'rdwr',
      '--backing-store',
      lun,
    ],
    ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '--initiator-address', 'ALL'],
  ];
  for (const step of steps) {
    const result = tgtadm(...step);
    if (result.status !== 0) {
      await stop();
      throw new Error(`tgtadm ${step.join(' ')} failed: ${result.stderr}`);
    }
  }
  return { url: `iscsi://127.0.0.1:${port}/${TGT_IQN}/1`, stop };
}

/** qemu-nbd serving a raw file of `sizeBytes` (page cache, writeback), 8 connections allowed. */
export async function startQemuNbd(work: string, sizeBytes: number): Promise<Endpoint> {
  const image = path.join(work, 'qemu-nbd.img');
  sparseFile(image, sizeBytes);
  const port = await freePort();
  throwIfAborted();
  const child = spawn(
    'qemu-nbd',
    ['-f', 'raw', '--bind=127.0.0.1', `--port=${port}`, '--persistent', '--shared=8', image],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const stop = async () => {
    forget();
    await stopChild(child, 5000);
    fs.rmSync(image, { force: true });
  };
  const forget = onCleanUp('qemu-nbd', stop, () => child.kill('SIGKILL'));
  if (!(await waitForPort(port, 10_000))) {
    await stop();
    throw new Error(`qemu-nbd did not start: ${stderr}`);
  }
  // qemu-nbd's default export is the empty name.
  return { url: `nbd://127.0.0.1:${port}/`, stop };
}

/** `replicas` replica processes of a volume of `sizeBytes`, in folders under `work`. */
export async function startReplicas(
  work: string,
  label: string,
  count: number,
  sizeBytes: number,
): Promise<Server[]> {
  const servers: Server[] = [];
  for (let index = 0; index < count; index++) {
    const directory = path.join(work, `${label}-r${index}`);
    servers.push(
      await startHornbill([
        'replica',
        '--dir',
        directory,
        '--size',
        String(sizeBytes),
        '--listen',
        '127.0.0.1:0',
      ]),
    );
    onCleanUp(
      `replica folder ${directory}`,
      async () => fs.rmSync(directory, { recursive: true, force: true }),
      () => fs.rmSync(directory, { recursive: true, force: true }),
    );
  }
  return servers;
}

/** The folder of the replica an engine hosts itself (removed at clean-up). */
export function localReplicaFolder(work: string, label: string): string {
  const directory = path.join(work, `${label}-local`);
  onCleanUp(
    `replica folder ${directory}`,
    async () => fs.rmSync(directory, { recursive: true, force: true }),
    () => fs.rmSync(directory, { recursive: true, force: true }),
  );
  return directory;
}

/**
 * An engine over running replicas with one frontend; the volume is named `bench`. With
 * `localReplica` the engine also serves that replica folder on its own thread.
 */
export async function startEngine(
  replicas: Server[],
  sizeBytes: number,
  frontend: 'iscsi' | 'nbd',
  workers = 1,
  localReplica?: string,
): Promise<Endpoint> {
  const port = await freePort();
  const engine = await startHornbill([
    'engine',
    '--name',
    'bench',
    '--size',
    String(sizeBytes),
    ...replicas.flatMap((replica) => ['--replica', `127.0.0.1:${replica.ready.port}`]),
    ...(localReplica === undefined ? [] : ['--local-replica', localReplica]),
    '--frontend',
    frontend,
    '--workers',
    String(workers),
    '--listen',
    `127.0.0.1:${port}`,
  ]);
  const url =
    frontend === 'iscsi'
      ? `iscsi://127.0.0.1:${engine.ready.iscsi.port}/${engine.ready.iscsi.iqn}/${engine.ready.iscsi.lun}`
      : `nbd://127.0.0.1:${engine.ready.nbd.port}/${engine.ready.nbd.export}`;
  return { url, stop: () => engine.stop() };
}
