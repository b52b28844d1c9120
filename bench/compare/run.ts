/**
 * bench/compare: each profile of bench/profiles against Hornbill and its peers, in one run
 * on one machine (issue 7; docs/bench.md, "Peer comparison"):
 *
 *   node_modules/.bin/node bench/compare/run.ts [--runtime 5] [--ramp 1] [--size 512M]
 *       [--profiles iops,bandwidth,latency,mixed] [--replicas 1,3] [--write-results] [--output FILE]
 *
 * Peers: a plain local file (fio, io_uring or psync, O_DIRECT when it works: the limit of
 * this machine), tgtd serving a file-backed LUN through Hornbill's initiator (`hornbill
 * bench`), qemu-nbd serving a raw file through fio's nbd engine. Hornbill: volumes of 1 and
 * 3 replicas, through iSCSI (`hornbill bench`) and through NBD (fio). Every network target
 * is filled once through its frontend before its profiles run, so that reads read data.
 * Ratios are Hornbill / the peer reached the same way (same client, same protocol).
 * Writes a section of bench/RESULTS.md with --write-results; --output writes every figure
 * as JSON. Starts and stops every server itself and removes its files, also on errors and
 * on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseFioSize } from '../../src/bench/options.ts';
import { parseBenchArguments } from '../common.ts';
import { writeResultsSection } from '../results.ts';
import { deriveProfile, fill, fio, fioWorks, hornbillBench, type Measurement } from './measure.ts';
import { localReplicaFolder, startEngine, startQemuNbd, startReplicas, startTgtd } from './peers.ts';
import { abort, cleanUp, cleanUpNow, commandExists, onCleanUp, run } from './processes.ts';
import { type ComparisonResults, PEERS, type PeerKey, resultTables } from './table.ts';

const USAGE = `usage: node bench/compare/run.ts [--runtime 5] [--ramp 1] [--size 512M] [--profiles a,b] [--replicas 1,3] [--engine-workers 1] [--local-replica] [--write-results] [--output FILE]`;

const PROFILE_DIRECTORY = path.join(import.meta.dirname, '..', 'profiles');
const ALL_PROFILES = ['iops', 'bandwidth', 'latency', 'mixed'];

/** Debian packages of the tools the comparison drives. */
const TOOLS: [command: string, debianPackage: string][] = [
  ['fio', 'fio'],
  ['tgtd', 'tgt'],
  ['tgtadm', 'tgt'],
  ['qemu-nbd', 'qemu-utils'],
  ['unshare', 'util-linux'],
  ['nsenter', 'util-linux'],
];

export interface CompareSettings {
  runtimeMs: number;
  rampMs: number;
  sizeBytes: number;
  profiles: string[];
  replicaCounts: number[];
  /** Engine worker threads (1, the instance manager's default; 0 runs the engine inline). */
  engineWorkers: number;
  /** Each engine hosts one of its replicas on its own thread (`hornbill engine --local-replica`). */
  localReplica: boolean;
}

function parseSettings(argv: string[]): CompareSettings & { writeResults: boolean; output: string | null } {
  const values = parseBenchArguments(
    USAGE,
    {
      runtime: { type: 'string', default: '5' },
      ramp: { type: 'string', default: '1' },
      size: { type: 'string', default: '512M' },
      profiles: { type: 'string', default: ALL_PROFILES.join(',') },
      replicas: { type: 'string', default: '1,3' },
      'engine-workers': { type: 'string', default: '1' },
      'local-replica': { type: 'boolean', default: false },
      'write-results': { type: 'boolean', default: false },
      output: { type: 'string' },
    },
    argv,
  );
  const runtimeSeconds = Number(values.runtime);
  const rampSeconds = Number(values.ramp);
  const sizeBytes = parseFioSize(values.size);
  if (!(runtimeSeconds > 0) || !(rampSeconds >= 0) || sizeBytes === null || sizeBytes < 16 * 1024 * 1024)
    throw new Error('--runtime (seconds, > 0), --ramp (seconds) and --size (at least 16M) are wrong');
  const profiles = values.profiles.split(',').map((name) => name.trim());
  for (const profile of profiles)
    if (!fs.existsSync(path.join(PROFILE_DIRECTORY, `${profile}.fio`)))
      throw new Error(`no profile bench/profiles/${profile}.fio`);
  const replicaCounts = values.replicas.split(',').map(Number);
  if (replicaCounts.some((count) => !Number.isInteger(count) || count < 1 || count > 3))
    throw new Error('--replicas takes replica counts from 1 to 3, such as 1,3');
  const engineWorkers = Number(values['engine-workers']);
  if (!Number.isInteger(engineWorkers) || engineWorkers < 0 || engineWorkers > 8)
    throw new Error('--engine-workers takes 0 to 8');
  return {
    engineWorkers,
    localReplica: values['local-replica'],
    runtimeMs: runtimeSeconds * 1000,
    rampMs: rampSeconds * 1000,
    sizeBytes: Math.floor(sizeBytes / (1024 * 1024)) * 1024 * 1024,
    profiles,
    replicaCounts,
    writeResults: values['write-results'],
    output: values.output ?? null,
  };
}

function log(text: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

/** Runs `measure` for every profile on one peer; a failure is recorded, not fatal. */
async function measurePeer(
  results: ComparisonResults,
  peer: PeerKey,
  profiles: Map<string, string>,
  measure: (profile: string) => Promise<Measurement[]>,
): Promise<void> {
  results[peer] = {};
  for (const [name, file] of profiles) {
    const started = performance.now();
    try {
      results[peer][name] = await measure(file);
      log(`${PEERS[peer].label}: ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      results[peer][name] = { error: (error as Error).message };
      log(`${PEERS[peer].label}: ${name} FAILED: ${(error as Error).message.split('\n')[0]}`);
    }
  }
}

function failAll(
  results: ComparisonResults,
  peer: PeerKey,
  profiles: Map<string, string>,
  error: unknown,
): void {
  results[peer] = {};
  for (const name of profiles.keys()) results[peer][name] = { error: (error as Error).message };
  log(`${PEERS[peer].label}: FAILED: ${(error as Error).message.split('\n')[0]}`);
}

async function localFile(work: string, sizeBytes: number): Promise<{ options: string[]; engine: string }> {
  const file = path.join(work, 'local.img');
  onCleanUp(
    'local file',
    async () => fs.rmSync(file, { force: true }),
    () => fs.rmSync(file, { force: true }),
  );
  // fio's layout: write the file once, sequentially (as run-baselines.sh does).
  const layout = await run(
    'fio',
    [
      '--name=layout',
      `--filename=${file}`,
      `--size=${sizeBytes}`,
      '--rw=write',
      '--bs=1M',
      '--ioengine=psync',
    ],
    { cwd: work },
  );
  if (layout.code !== 0) throw new Error(`fio could not lay out ${file}: ${layout.stderr}`);
  const direct = await fioWorks(work, file, 'psync', true);
  for (const engine of ['io_uring', 'libaio', 'psync']) {
    if (await fioWorks(work, file, engine, direct))
      return {
        engine: `${engine}${direct ? ', O_DIRECT' : ', buffered'}`,
        options: [`--filename=${file}`, `--ioengine=${engine}`, `--direct=${direct ? 1 : 0}`],
      };
  }
  throw new Error('fio runs no engine (io_uring, libaio, psync) on a local file');
}

export async function compare(
  settings: CompareSettings,
  work: string,
): Promise<{ results: ComparisonResults; localEngine: string }> {
  const results: ComparisonResults = {};
  const profiles = new Map<string, string>();
  for (const name of settings.profiles)
    profiles.set(name, deriveProfile(path.join(PROFILE_DIRECTORY, `${name}.fio`), work, settings));
  const size = settings.sizeBytes;

  log(`local file, ${size / 1024 / 1024} MiB`);
  let localEngine = 'unknown';
  try {
    const local = await localFile(work, size);
    localEngine = local.engine;
    await measurePeer(results, 'local', profiles, (profile) => fio(profile, local.options, work));
  } catch (error) {
    failAll(results, 'local', profiles, error);
  }
  fs.rmSync(path.join(work, 'local.img'), { force: true });

  log("tgtd, file-backed LUN, through Hornbill's initiator");
  try {
    const tgtd = await startTgtd(work, size);
    try {
      await fill(tgtd.url, size);
      await measurePeer(results, 'tgtd', profiles, (profile) => hornbillBench(tgtd.url, profile));
    } finally {
      await tgtd.stop();
    }
  } catch (error) {
    failAll(results, 'tgtd', profiles, error);
  }

  log('qemu-nbd, raw file, through fio --ioengine=nbd');
  try {
    const qemu = await startQemuNbd(work, size);
    try {
      await fill(qemu.url, size);
      await measurePeer(results, 'qemu-nbd', profiles, (profile) =>
        fio(profile, ['--ioengine=nbd', `--uri=${qemu.url}`], work),
      );
    } finally {
      await qemu.stop();
    }
  } catch (error) {
    failAll(results, 'qemu-nbd', profiles, error);
  }

  for (const replicas of settings.replicaCounts) {
    const iscsiKey = `hornbill-${replicas}-iscsi` as PeerKey;
    const nbdKey = `hornbill-${replicas}-nbd` as PeerKey;
    log(`Hornbill, ${replicas} replica(s)`);
    let servers: Awaited<ReturnType<typeof startReplicas>> = [];
    try {
      // With --local-replica the engine serves one replica folder itself; the others are processes.
      const localReplica = settings.localReplica ? localReplicaFolder(work, `hb${replicas}`) : undefined;
      servers = await startReplicas(
        work,
        `hb${replicas}`,
        replicas - (localReplica === undefined ? 0 : 1),
        size,
      );
      try {
        const iscsi = await startEngine(servers, size, 'iscsi', settings.engineWorkers, localReplica);
        try {
          await fill(iscsi.url, size);
          await measurePeer(results, iscsiKey, profiles, (profile) => hornbillBench(iscsi.url, profile));
        } finally {
          await iscsi.stop();
        }
      } catch (error) {
        failAll(results, iscsiKey, profiles, error);
      }
      try {
        const nbd = await startEngine(servers, size, 'nbd', settings.engineWorkers, localReplica);
        try {
          await measurePeer(results, nbdKey, profiles, (profile) =>
            fio(profile, ['--ioengine=nbd', `--uri=${nbd.url}`], work),
          );
        } finally {
          await nbd.stop();
        }
      } catch (error) {
        failAll(results, nbdKey, profiles, error);
      }
    } catch (error) {
      failAll(results, iscsiKey, profiles, error);
      failAll(results, nbdKey, profiles, error);
    } finally {
      for (const server of servers) await server.stop();
    }
  }
  return { results, localEngine };
}

function versionOf(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.split('\n')[0].trim() : 'unknown';
}

function packageVersion(name: string): string {
  const result = spawnSync('dpkg-query', ['-W', `-f=${'$'}{Version}`, name], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : 'unknown';
}

function commit(): string {
  const head = spawnSync('git', ['rev-parse', '--short=10', 'HEAD'], {
    encoding: 'utf8',
    cwd: import.meta.dirname,
  });
  if (head.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], {
    encoding: 'utf8',
    cwd: import.meta.dirname,
  });
  return `${head.stdout.trim()}${dirty.stdout.trim() === '' ? '' : ' (with uncommitted changes)'}`;
}

async function main(): Promise<number> {
  const settings = parseSettings(process.argv.slice(2));
  const missing = TOOLS.filter(([command]) => !commandExists(command));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, debianPackage]) => debianPackage))].join(' ');
    process.stderr.write(
      `compare: missing ${missing.map(([command]) => command).join(', ')}: apt-get install -y ${packages}\n`,
    );
    return 2;
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-compare-'));
  onCleanUp(
    'work folder',
    async () => fs.rmSync(work, { recursive: true, force: true }),
    () => fs.rmSync(work, { recursive: true, force: true }),
  );
  const started = performance.now();
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const { results, localEngine } = await compare(settings, work);
  const elapsedSeconds = (performance.now() - started) / 1000;
  const cpus = os.cpus();
  const header = [
    `Measured ${date} UTC, commit ${commit()}, ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ` +
      `${Math.round(os.totalmem() / 1024 ** 3)} GiB, Linux ${os.release()}, Node ${process.version}; ` +
      `${versionOf('fio', ['--version'])}, tgt ${packageVersion('tgt')}, qemu-nbd ${packageVersion('qemu-utils')}.`,
    `Each job ${settings.runtimeMs / 1000} s after a ${settings.rampMs / 1000} s ramp, on ${settings.sizeBytes / 1024 / 1024} MiB ` +
      `(filled once through each network target's frontend); whole comparison ${Math.round(elapsedSeconds)} s. ` +
      `Local file: fio ${localEngine}. Servers and clients share the machine's cores.`,
    '',
    `Command: \`node_modules/.bin/node bench/compare/run.ts --runtime ${settings.runtimeMs / 1000} --ramp ${settings.rampMs / 1000} ` +
      `--size ${settings.sizeBytes / 1024 / 1024}M${settings.profiles.join(',') === ALL_PROFILES.join(',') ? '' : ` --profiles ${settings.profiles.join(',')}`}` +
      `${settings.replicaCounts.join(',') === '1,3' ? '' : ` --replicas ${settings.replicaCounts.join(',')}`}` +
      `${settings.engineWorkers === 1 ? '' : ` --engine-workers ${settings.engineWorkers}`}${settings.localReplica ? ' --local-replica' : ''} --write-results\``,
    `Hornbill's engines run with ${settings.engineWorkers === 0 ? 'no worker thread (the engine inline on the frontend thread)' : `${settings.engineWorkers} worker thread(s) (the instance manager's default is 1)`}` +
      `${settings.localReplica ? '; each engine hosts one of its replicas on its own thread and reaches it in memory (`hornbill engine --local-replica`), the others are `hornbill replica` processes reached over TCP' : '; every replica is a `hornbill replica` process reached over TCP'}.`,
    '',
  ];
  const body = [...header, ...resultTables(results, settings.profiles, settings.replicaCounts)].join('\n');
  process.stdout.write(`${body}\n`);
  if (settings.output !== null)
    fs.writeFileSync(
      settings.output,
      `${JSON.stringify({ settings, localEngine, elapsedSeconds, results }, null, 2)}\n`,
    );
  if (settings.writeResults) {
    // The kbench set is issue 7's table; issue 4's frontend set has a section of its own.
    const frontends = settings.profiles.join(',') === 'frontends';
    const workers = settings.engineWorkers === 1 ? '' : `-workers-${settings.engineWorkers}`;
    const local = settings.localReplica ? '-local-replica' : '';
    writeResultsSection(
      `${frontends ? 'frontends' : 'compare'}${workers}${local}`,
      `${
        frontends
          ? 'iSCSI and NBD frontends against tgtd and qemu-nbd (bench/compare --profiles frontends, issue 4)'
          : 'Hornbill against its peers (bench/compare, issue 7)'
      }${workers === '' ? '' : `, engine with ${settings.engineWorkers} worker threads`}${local === '' ? '' : ', local replica in the engine'}`,
      body,
    );
  }
  const failed = Object.values(results).some((profiles) =>
    Object.values(profiles).some((entry) => 'error' in entry),
  );
  return failed ? 1 : 0;
}

process.on('exit', cleanUpNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping every server`);
    abort();
    cleanUp().finally(() => process.exit(130));
  });
}
try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`compare: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
