/**
 * bench/compare/rebuild.ts: rebuild and recovery of a Hornbill volume (issue 7), next to a
 * raw `cp -r --sparse=always` of the same replica data:
 *
 *   node_modules/.bin/node bench/compare/rebuild.ts [--size 4G] [--write-results] [--output FILE]
 *
 * 1. A volume of 2 replicas, fully written; a third, empty replica is added: the rebuild
 *    time (the engine's addReplica through its control port), and `cp` of a source's layers.
 * 2. Re-sync: that third replica stops, 1 % of the volume's 4 KiB blocks are rewritten,
 *    it comes back on the same folder and port and is added again: only what changed moves.
 * 3. The I/O latency a workload sees (4 KiB random 70/30 read/write, queue depth 1, through
 *    the NBD frontend with `hornbill bench`) with no rebuild, then while a fresh replica of
 *    the fully written volume is rebuilt.
 * 4. A second volume written in Longhorn's worst case for sparse copies: 4 KiB of data, 4 KiB
 *    hole, over the whole volume; rebuild and `cp` again.
 *
 * Replicas and engines are `hornbill` processes on 127.0.0.1; the volume is written through
 * the engine's NBD frontend with Hornbill's NBD client. Everything runs in a temp folder
 * that is removed at the end, also on errors and Ctrl-C.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { IoRequest } from '../../src/bench/connection.ts';
import { NbdClient } from '../../src/bench/nbd-client.ts';
import { Permutation } from '../../src/bench/offsets.ts';
import { parseFioSize } from '../../src/bench/options.ts';
import { ReplicaClient } from '../../src/dataplane/protocol/replica-client.ts';
import type { HornbillError } from '../../src/errors.ts';
import { silentLogger } from '../../src/logging.ts';
import { parseBenchArguments } from '../common.ts';
import { writeResultsSection } from '../results.ts';
import { parseFioJson } from './measure.ts';
import {
  abort,
  cleanUp,
  cleanUpNow,
  freePort,
  HORNBILL,
  onCleanUp,
  run,
  type Server,
  startHornbill,
} from './processes.ts';

const USAGE = `usage: node bench/compare/rebuild.ts [--size 4G] [--write-results] [--output FILE]`;

const MiB = 1024 * 1024;
const BLOCK = 4096;

interface Volume {
  replicas: Server[];
  ports: number[];
  directories: string[];
  engine: Server;
  control: ReplicaClient;
  nbd: NbdClient;
  url: string;
}

function log(text: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

async function startReplica(directory: string, sizeBytes: number, port: number): Promise<Server> {
  return startHornbill([
    'replica',
    '--dir',
    directory,
    '--size',
    String(sizeBytes),
    '--listen',
    `127.0.0.1:${port}`,
  ]);
}

async function startVolume(
  work: string,
  label: string,
  replicaCount: number,
  sizeBytes: number,
): Promise<Volume> {
  const replicas: Server[] = [];
  const ports: number[] = [];
  const directories: string[] = [];
  for (let index = 0; index < replicaCount; index++) {
    const directory = path.join(work, `${label}-r${index}`);
    const port = await freePort();
    replicas.push(await startReplica(directory, sizeBytes, port));
    ports.push(port);
    directories.push(directory);
  }
  const engine = await startHornbill([
    'engine',
    '--name',
    label,
    '--size',
    String(sizeBytes),
    ...ports.flatMap((port) => ['--replica', `127.0.0.1:${port}`]),
    '--frontend',
    'nbd',
    '--listen',
    '127.0.0.1:0',
    '--control',
    '127.0.0.1:0',
  ]);
  const control = new ReplicaClient({
    address: { host: '127.0.0.1', port: engine.ready.control.port },
    log: silentLogger,
    // A rebuild is one control request that lasts as long as the rebuild.
    timeoutMs: 3_600_000,
  });
  await control.connect();
  const nbd = await NbdClient.open({ host: '127.0.0.1', port: engine.ready.nbd.port, exportName: label }, 32);
  onCleanUp(
    `volume ${label}`,
    async () => {
      control.close();
    },
    () => control.close(),
  );
  return {
    replicas,
    ports,
    directories,
    engine,
    control,
    nbd,
    url: `nbd://127.0.0.1:${engine.ready.nbd.port}/${label}`,
  };
}

async function stopVolume(volume: Volume): Promise<void> {
  await volume.nbd.close();
  volume.control.close();
  await volume.engine.stop();
  for (const replica of volume.replicas) await replica.stop();
  for (const directory of volume.directories) fs.rmSync(directory, { recursive: true, force: true });
}

/** Writes `count` I/Os from `next` (offset and length of the i-th) with `queueDepth` in flight. */
async function writeMany(
  nbd: NbdClient,
  count: number,
  queueDepth: number,
  next: (index: number) => { offset: number; length: number },
): Promise<void> {
  const pattern = Buffer.alloc(MiB);
  for (let position = 0; position < MiB; position += 4)
    pattern.writeUInt32LE((position * 2654435761 + 12345) >>> 0, position);
  let issued = 0;
  const lane = async () => {
    const buffer = Buffer.from(pattern);
    while (issued < count) {
      const { offset, length } = next(issued++);
      const data = buffer.subarray(0, length);
      for (let position = 0; position < length; position += BLOCK)
        data.writeUInt32LE(offset + position, position);
      const error = await new Promise<HornbillError | null>((resolve) => {
        const request: IoRequest = { transportState: null, complete: resolve };
        nbd.write(offset, data, request);
      });
      if (error !== null) throw error;
    }
  };
  await Promise.all(Array.from({ length: queueDepth }, lane));
}

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { seconds: (performance.now() - start) / 1000, value };
}

interface RebuildProgress {
  transferredBytes: number;
  totalBytes: number;
  state: string;
}

async function addReplica(
  volume: Volume,
  port: number,
): Promise<{ seconds: number; progress: RebuildProgress }> {
  await run('sync', []);
  const { seconds, value } = await timed(() =>
    volume.control.control<RebuildProgress>('addReplica', { host: '127.0.0.1', port }),
  );
  if (value.state !== 'done') throw new Error(`rebuild ended in state ${value.state}`);
  return { seconds, progress: value };
}

/** `cp -r --sparse=always` of a replica's layers folder, from the same page cache state. */
async function copySparse(
  directory: string,
  work: string,
): Promise<{ seconds: number; allocatedBytes: number }> {
  const target = path.join(work, 'cp-copy');
  fs.rmSync(target, { recursive: true, force: true });
  await run('sync', []);
  const { seconds, value } = await timed(() =>
    run('cp', ['-r', '--sparse=always', path.join(directory, 'layers'), target]),
  );
  if (value.code !== 0) throw new Error(`cp failed: ${value.stderr}`);
  const allocatedBytes = fs
    .readdirSync(target)
    .reduce((sum, name) => sum + fs.statSync(path.join(target, name)).blocks * 512, 0);
  fs.rmSync(target, { recursive: true, force: true });
  return { seconds, allocatedBytes };
}

interface Latency {
  readP50Us: number;
  readP99Us: number;
  writeP50Us: number;
  writeP99Us: number;
  iops: number;
}

const WORKLOAD = ['--rw', 'randrw', '--rwmixread', '70', '--bs', '4k', '--iodepth', '1', '--name', 'during'];

/** The workload for `seconds`, or (with `during`) until `during` settles: then it is interrupted and reports. */
async function workloadLatency<T>(
  url: string,
  sizeBytes: number,
  options: { seconds: number } | { during: () => Promise<T> },
): Promise<{ latency: Latency; value: T | null }> {
  const runtime = 'seconds' in options ? String(options.seconds) : '3600';
  const child = spawn(
    process.execPath,
    [
      HORNBILL,
      'bench',
      '--target',
      url,
      ...WORKLOAD,
      '--size',
      String(sizeBytes),
      '--time_based',
      '--runtime',
      runtime,
      '--output-format',
      'json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const forget = onCleanUp(
    'hornbill bench',
    async () => void child.kill('SIGKILL'),
    () => child.kill('SIGKILL'),
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  let value: T | null = null;
  if ('during' in options) {
    // Let the load start before the event it is to see.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    try {
      value = await options.during();
    } finally {
      child.kill('SIGINT');
    }
  }
  const code = await closed;
  forget();
  if (code !== 0) throw new Error(`hornbill bench exited with ${code}: ${stderr}`);
  const [job] = parseFioJson(stdout);
  return {
    latency: {
      readP50Us: job.readP50Us,
      readP99Us: job.readP99Us,
      writeP50Us: job.writeP50Us,
      writeP99Us: job.writeP99Us,
      iops: job.readIops + job.writeIops,
    },
    value,
  };
}

async function measure(work: string, sizeBytes: number) {
  const blocks = sizeBytes / BLOCK;
  log(`fully written volume: ${sizeBytes / MiB} MiB on 2 replicas`);
  const full = await startVolume(work, 'full', 2, sizeBytes);
  const fill = await timed(() =>
    writeMany(full.nbd, sizeBytes / MiB, 8, (index) => ({ offset: index * MiB, length: MiB })),
  );
  await full.control.control('flush');
  log(`written in ${fill.seconds.toFixed(1)} s; rebuilding a third replica`);
  const thirdPort = await freePort();
  const thirdDirectory = path.join(work, 'full-r2');
  let third = await startReplica(thirdDirectory, sizeBytes, thirdPort);
  const rebuild = await addReplica(full, thirdPort);
  const fullCopy = await copySparse(full.directories[0], work);
  log(
    `rebuild ${rebuild.seconds.toFixed(1)} s, cp ${fullCopy.seconds.toFixed(1)} s; re-sync after 1 % of blocks change`,
  );

  await third.stop();
  const changed = Math.max(1, Math.round(blocks / 100));
  const permutation = new Permutation(blocks, 7);
  await writeMany(full.nbd, changed, 16, () => ({ offset: permutation.next() * BLOCK, length: BLOCK }));
  await full.control.control('flush');
  third = await startReplica(thirdDirectory, sizeBytes, thirdPort);
  const resync = await addReplica(full, thirdPort);
  log(
    `re-sync ${resync.seconds.toFixed(1)} s (${(resync.progress.transferredBytes / MiB).toFixed(1)} MiB sent); latency without and during a rebuild`,
  );

  const quiet = await workloadLatency(full.url, sizeBytes, { seconds: 5 });
  // A fresh replica in place of the third: the whole volume again, under load.
  await third.stop();
  await full.control.control('removeReplica', { host: '127.0.0.1', port: thirdPort });
  fs.rmSync(thirdDirectory, { recursive: true, force: true });
  third = await startReplica(thirdDirectory, sizeBytes, thirdPort);
  const busy = await workloadLatency(full.url, sizeBytes, { during: () => addReplica(full, thirdPort) });
  await third.stop();
  fs.rmSync(thirdDirectory, { recursive: true, force: true });
  await stopVolume(full);

  log('4 KiB data / 4 KiB hole volume on 2 replicas');
  const holes = await startVolume(work, 'holes', 2, sizeBytes);
  await writeMany(holes.nbd, blocks / 2, 32, (index) => ({ offset: index * 2 * BLOCK, length: BLOCK }));
  await holes.control.control('flush');
  const holesPort = await freePort();
  const holesThird = await startReplica(path.join(work, 'holes-r2'), sizeBytes, holesPort);
  const holesRebuild = await addReplica(holes, holesPort);
  const holesCopy = await copySparse(holes.directories[0], work);
  await holesThird.stop();
  fs.rmSync(path.join(work, 'holes-r2'), { recursive: true, force: true });
  await stopVolume(holes);
  log(`rebuild ${holesRebuild.seconds.toFixed(1)} s, cp ${holesCopy.seconds.toFixed(1)} s`);
  return {
    fillSeconds: fill.seconds,
    rebuild,
    fullCopy,
    resync: { ...resync, changedBlocks: changed },
    quiet: quiet.latency,
    busy: { latency: busy.latency, rebuild: busy.value! },
    holesRebuild,
    holesCopy,
  };
}

function describe(
  result: Awaited<ReturnType<typeof measure>>,
  sizeBytes: number,
  elapsedSeconds: number,
): string {
  const mib = (bytes: number) => `${Math.round(bytes / MiB).toLocaleString('en')} MiB`;
  const rate = (bytes: number, seconds: number) => `${Math.round(bytes / MiB / seconds)} MiB/s`;
  const times = (ours: number, theirs: number) => `**${(ours / theirs).toFixed(1)}×**`;
  const lat = (p50: number, p99: number) => `${Math.round(p50)} / ${Math.round(p99)} µs`;
  const size = mib(sizeBytes);
  const cpus = os.cpus();
  return [
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus.length} cores (${cpus[0]?.model.trim()}), Node ${process.version}; ` +
      `${size} volume, replicas and engine as \`hornbill\` processes on 127.0.0.1, rebuilt from 2 RW replicas through the engine's addReplica; ` +
      `written through the NBD frontend (fill: ${result.fillSeconds.toFixed(1)} s). \`cp\` copies one source replica's layers folder, from the page cache as the rebuild reads it. Whole run ${Math.round(elapsedSeconds)} s.`,
    '',
    `Command: \`node_modules/.bin/node bench/compare/rebuild.ts --size ${sizeBytes / MiB}M --write-results\``,
    '',
    '| scenario | Hornbill rebuild | data sent | `cp -r --sparse=always` | rebuild / cp time |',
    '|---|---|---|---|---|',
    `| new replica, volume fully written | ${result.rebuild.seconds.toFixed(1)} s (${rate(result.rebuild.progress.transferredBytes, result.rebuild.seconds)}) | ${mib(result.rebuild.progress.transferredBytes)} | ${result.fullCopy.seconds.toFixed(1)} s (${mib(result.fullCopy.allocatedBytes)} allocated) | ${times(result.rebuild.seconds, result.fullCopy.seconds)} |`,
    `| new replica, 4 KiB data / 4 KiB hole | ${result.holesRebuild.seconds.toFixed(1)} s (${rate(result.holesRebuild.progress.transferredBytes, result.holesRebuild.seconds)}) | ${mib(result.holesRebuild.progress.transferredBytes)} | ${result.holesCopy.seconds.toFixed(1)} s (${mib(result.holesCopy.allocatedBytes)} allocated) | ${times(result.holesRebuild.seconds, result.holesCopy.seconds)} |`,
    `| returning replica, 1 % of blocks changed (${result.resync.changedBlocks.toLocaleString('en')} × 4 KiB) | ${result.resync.seconds.toFixed(1)} s | ${mib(result.resync.progress.transferredBytes)} | ${result.fullCopy.seconds.toFixed(1)} s (a full copy) | ${times(result.resync.seconds, result.fullCopy.seconds)} |`,
    '',
    'Latency of a workload on the volume (4 KiB random, 70 % reads, queue depth 1, `hornbill bench` over NBD), p50 / p99:',
    '',
    '| | reads | writes | IOPS |',
    '|---|---|---|---|',
    `| no rebuild (5 s) | ${lat(result.quiet.readP50Us, result.quiet.readP99Us)} | ${lat(result.quiet.writeP50Us, result.quiet.writeP99Us)} | ${Math.round(result.quiet.iops).toLocaleString('en')} |`,
    `| during the rebuild of a new replica of the full volume (${result.busy.rebuild.seconds.toFixed(1)} s under this load) | ${lat(result.busy.latency.readP50Us, result.busy.latency.readP99Us)} | ${lat(result.busy.latency.writeP50Us, result.busy.latency.writeP99Us)} | ${Math.round(result.busy.latency.iops).toLocaleString('en')} |`,
  ].join('\n');
}

async function main(): Promise<number> {
  const values = parseBenchArguments(USAGE, {
    size: { type: 'string', default: '4G' },
    'write-results': { type: 'boolean', default: false },
    output: { type: 'string' },
  });
  const parsed = parseFioSize(values.size);
  if (parsed === null || parsed < 16 * MiB) throw new Error('--size must be a size of at least 16M');
  const sizeBytes = Math.floor(parsed / MiB) * MiB;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-rebuild-'));
  onCleanUp(
    'work folder',
    async () => fs.rmSync(work, { recursive: true, force: true }),
    () => fs.rmSync(work, { recursive: true, force: true }),
  );
  const started = performance.now();
  const result = await measure(work, sizeBytes);
  const body = describe(result, sizeBytes, (performance.now() - started) / 1000);
  process.stdout.write(`${body}\n`);
  if (values.output !== undefined) fs.writeFileSync(values.output, `${JSON.stringify(result, null, 2)}\n`);
  if (values['write-results'])
    writeResultsSection('rebuild', 'Rebuild and recovery (bench/compare/rebuild.ts, issue 7)', body);
  return 0;
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
  process.stderr.write(`rebuild: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
