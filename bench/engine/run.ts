/**
 * bench/engine: the engine without a frontend (issue 3), over 1 and 3 replica processes on
 * loopback, next to a plain file, in one run.
 *
 *   npm run bench:engine [-- --seconds 3 --size-mib 1024 --rebuild-gib 4 --settle-seconds 5 --part all|rebuild --write-results]
 *
 * Workloads: 4 KiB random write and read at queue depth 1 and 32, 1 MiB sequential write.
 * The engine runs in this process; each replica is a `hornbill replica` process, so the
 * figures include the wire protocol and the replicas' work. CPU time per I/O is summed over
 * every process (this one and the replicas, from /proc), which does not depend on how
 * many cores the machine has. The plain file is written with synchronous pwrite at queue
 * depth 1 (its QD32 figure is the same calls, one at a time).
 *
 * Local replica: the same workloads with the engine's first replica served by this thread
 * (HostedReplica, reached in memory through the in-thread link), alone and with two
 * replica processes.
 *
 * Rebuild: a volume of --rebuild-gib GiB fully written, then a third replica is added and
 * rebuilt, and the same layer files copied with `cp --sparse=always` (and that copy followed
 * by `sync`: the rebuild's copy is durable when it ends), each pair under the same memory
 * condition (rebuild-vs-copy.ts). `--part rebuild` runs only this part (it cannot be
 * combined with --write-results, which replaces the whole section).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChannelBlockDevice } from '../../src/dataplane/engine/channel-block-device.ts';
import { Engine } from '../../src/dataplane/engine/engine.ts';
import { HostedReplica } from '../../src/dataplane/replica/hosted-replica.ts';
import { silentLogger } from '../../src/logging.ts';
import { checksumImplementation } from '../../src/native.ts';
import { parseBenchArguments, randomOffsets } from '../common.ts';
import { writeResultsSection } from '../results.ts';
import {
  freePageReporting,
  type RebuildRound,
  rebuildAgainstCopy,
  rebuildTable,
  SETTLE_SECONDS,
} from './rebuild-vs-copy.ts';

const USAGE = `usage: npm run bench:engine [-- --seconds 3 --size-mib 1024 --rebuild-gib 4 --settle-seconds 5 --part all|rebuild --write-results]`;

const values = parseBenchArguments(USAGE, {
  seconds: { type: 'string', default: '3' },
  'size-mib': { type: 'string', default: '1024' },
  'rebuild-gib': { type: 'string', default: '4' },
  part: { type: 'string', default: 'all' },
  'settle-seconds': { type: 'string', default: String(SETTLE_SECONDS) },
  'write-results': { type: 'boolean', default: false },
});
const SECONDS = Number(values.seconds);
if (values.part !== 'all' && values.part !== 'rebuild') {
  process.stderr.write(`--part is all or rebuild\n\n${USAGE}\n`);
  process.exit(2);
}
if (!(Number(values['settle-seconds']) >= 0)) {
  process.stderr.write(`--settle-seconds is a number of seconds, 0 or more\n\n${USAGE}\n`);
  process.exit(2);
}
if (values.part === 'rebuild' && values['write-results']) {
  process.stderr.write(`--write-results needs --part all (it replaces the whole section)\n\n${USAGE}\n`);
  process.exit(2);
}
const SIZE = Number(values['size-mib']) * 1024 * 1024;
const BLOCKS = SIZE / 4096;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-bench-engine-'));
const hornbill = path.join(import.meta.dirname, '..', '..', 'bin', 'hornbill.mjs');

interface Replica {
  pid: number;
  port: number;
  directory: string;
  stop(): Promise<void>;
}

async function startReplica(name: string, sizeBytes: number): Promise<Replica> {
  const directory = path.join(work, name);
  const child = spawn(
    process.execPath,
    [hornbill, 'replica', '--dir', directory, '--size', String(sizeBytes), '--listen', '127.0.0.1:0'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]));
    });
    child.once('exit', () => reject(new Error(`replica ${name} exited before it was ready`)));
  });
  return {
    pid: child.pid!,
    port: ready.port,
    directory,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** user + system CPU seconds of a process, from /proc. */
function processCpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function totalCpuSeconds(replicas: Replica[]): number {
  const own = process.cpuUsage();
  return (
    (own.user + own.system) / 1e6 + replicas.reduce((sum, replica) => sum + processCpuSeconds(replica.pid), 0)
  );
}

interface Result {
  operations: number;
  bytes: number;
  seconds: number;
  cpuMicrosecondsPerOperation: number;
}

function offsets(seed: number, count: number): Float64Array {
  return randomOffsets(seed, count, BLOCKS);
}

async function measure(
  replicas: Replica[],
  queueDepth: number,
  operation: (index: number, buffer: Buffer) => Promise<void>,
  bytesPerOperation: number,
  limit = Number.POSITIVE_INFINITY,
  seconds = SECONDS,
): Promise<Result> {
  const cpuBefore = totalCpuSeconds(replicas);
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: queueDepth }, async () => {
      const buffer = Buffer.alloc(bytesPerOperation, 0x5a);
      while (performance.now() < deadline && next < limit) await operation(next++, buffer);
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = totalCpuSeconds(replicas) - cpuBefore;
  return {
    operations: next,
    bytes: next * bytesPerOperation,
    seconds: elapsed,
    cpuMicrosecondsPerOperation: (cpu * 1e6) / next,
  };
}

/**
 * The engine directly in this process, or behind the worker rings with 0 (inline) or 1
 * worker thread; 'local': directly, with its first replica served by this thread (reached
 * in memory, as `hornbill engine --local-replica` does) and the others as processes.
 */
type EngineMode = 'direct' | 'local' | 0 | 1;

async function engineRuns(replicaCount: number, mode: EngineMode = 'direct'): Promise<Map<string, Result>> {
  const replicas: Replica[] = [];
  const hosted =
    mode === 'local'
      ? await HostedReplica.start({
          directory: path.join(work, `r${replicaCount}-local`),
          sizeBytes: SIZE,
          host: '127.0.0.1',
          port: 0,
          log: silentLogger,
          inThread: true,
        })
      : undefined;
  for (let index = hosted === undefined ? 0 : 1; index < replicaCount; index++) {
    replicas.push(await startReplica(`r${replicaCount}-${mode}-${index}`, SIZE));
  }
  const addresses = [
    ...(hosted === undefined ? [] : [{ address: hosted.address, local: true }]),
    ...replicas.map((replica) => ({ address: { host: '127.0.0.1', port: replica.port } })),
  ];
  const engine: Pick<Engine, 'read' | 'write' | 'close'> =
    mode === 'direct' || mode === 'local'
      ? await Engine.start({
          name: 'bench',
          replicas: addresses,
          log: silentLogger,
          preferLocalReplica: true,
        })
      : await ChannelBlockDevice.open({
          workers: mode,
          name: 'bench',
          replicas: addresses,
          replicaTimeoutMs: 8000,
          preferLocalReplica: false,
        });
  const results = new Map<string, Result>();
  const sequence = offsets(11, 1 << 20);
  // Fill the volume once, untimed, so that reads read data and the sequential writes below
  // rewrite blocks the page cache already holds, as the plain file's do (plainFileRuns):
  // this VM's cost of handing the page cache new memory moves by several times from run to
  // run and is not the engine's.
  await measure(
    replicas,
    8,
    (index, buffer) => engine.write(index * (1 << 20), buffer),
    1 << 20,
    SIZE / (1 << 20),
    Number.POSITIVE_INFINITY,
  );
  results.set(
    'seqwrite',
    await measure(
      replicas,
      8,
      (index, buffer) => engine.write((index % (SIZE / (1 << 20))) * (1 << 20), buffer),
      1 << 20,
    ),
  );
  for (const queueDepth of [1, 32]) {
    results.set(
      `randwrite-qd${queueDepth}`,
      await measure(
        replicas,
        queueDepth,
        (index, buffer) => engine.write(sequence[index % sequence.length], buffer),
        4096,
      ),
    );
    results.set(
      `randread-qd${queueDepth}`,
      await measure(
        replicas,
        queueDepth,
        (index, buffer) => engine.read(sequence[index % sequence.length], buffer),
        4096,
      ),
    );
  }
  await engine.close();
  await hosted?.close();
  for (const replica of replicas) await replica.stop();
  return results;
}

function plainFileRuns(): Map<string, Result> {
  const file = path.join(work, 'plain.img');
  const fd = fs.openSync(file, 'w+');
  fs.ftruncateSync(fd, SIZE);
  // Filled once, untimed, as the engine's volume is (engineRuns).
  const fill = Buffer.alloc(1 << 20, 0x5a);
  for (let offset = 0; offset < SIZE; offset += fill.length) fs.writeSync(fd, fill, 0, fill.length, offset);
  const sequence = offsets(11, 1 << 20);
  const results = new Map<string, Result>();
  // Each writes from `bufferCount` buffers in turn: the engine's 1 MiB writes come from the 8
  // buffers of its 8 requests in flight, so the plain file's do too (from one buffer, which
  // stays in the CPU's cache, the copy into the page cache is faster; reported beside it).
  const run = (
    name: string,
    bytes: number,
    bufferCount: number,
    operation: (index: number, buffer: Buffer) => void,
  ) => {
    const buffers = Array.from({ length: bufferCount }, () => Buffer.alloc(bytes, 0x5a));
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    let count = 0;
    while (performance.now() - start < SECONDS * 1000) {
      operation(count, buffers[count % bufferCount]);
      count++;
    }
    const cpu = process.cpuUsage(cpuBefore);
    results.set(name, {
      operations: count,
      bytes: count * bytes,
      seconds: (performance.now() - start) / 1000,
      cpuMicrosecondsPerOperation: (cpu.user + cpu.system) / count,
    });
  };
  const sequential = (index: number, buffer: Buffer) =>
    fs.writeSync(fd, buffer, 0, buffer.length, (index % (SIZE / (1 << 20))) * (1 << 20));
  run('seqwrite', 1 << 20, 8, sequential);
  run('seqwrite-one-buffer', 1 << 20, 1, sequential);
  run('randwrite', 4096, 1, (index, buffer) =>
    fs.writeSync(fd, buffer, 0, 4096, sequence[index % sequence.length]),
  );
  run('randread', 4096, 1, (index, buffer) =>
    fs.readSync(fd, buffer, 0, 4096, sequence[index % sequence.length]),
  );
  fs.closeSync(fd);
  fs.rmSync(file);
  return results;
}

/**
 * A volume of `gibibytes` fully written over two replica processes, then rebuilt onto a third
 * and its layer files copied with `cp`, each under the same memory condition
 * (rebuild-vs-copy.ts).
 */
async function rebuildRun(gibibytes: number, rounds: number): Promise<RebuildRound[]> {
  const sizeBytes = gibibytes * 1024 ** 3;
  const replicas = [await startReplica('rb-0', sizeBytes), await startReplica('rb-1', sizeBytes)];
  const engine = await Engine.start({
    name: 'rebuild',
    replicas: replicas.map((replica) => ({ address: { host: '127.0.0.1', port: replica.port } })),
    log: silentLogger,
  });
  const chunk = Buffer.alloc(1 << 20);
  for (let index = 0; index < chunk.length; index += 4)
    chunk.writeUInt32LE((index * 2654435761) >>> 0, index);
  const writers = Array.from({ length: 8 }, async (_, worker) => {
    for (let offset = worker * (1 << 20); offset < sizeBytes; offset += 8 << 20) {
      const data = Buffer.from(chunk);
      data.writeUInt32LE(offset, 0);
      await engine.write(offset, data);
    }
  });
  await Promise.all(writers);
  await engine.flush();
  const results = await rebuildAgainstCopy(
    {
      engine,
      sourceDirectory: replicas[0].directory,
      sourceDirectories: replicas.map((replica) => replica.directory),
      copyTarget: path.join(work, 'cp-copy'),
      startTarget: (name) => startReplica(name, sizeBytes),
      settleSeconds: Number(values['settle-seconds']),
    },
    rounds,
  );
  await engine.close();
  for (const replica of replicas) await replica.stop();
  return results;
}

function rebuildLines(rounds: RebuildRound[]): string[] {
  const reporting = freePageReporting();
  return [
    `Rebuild of a fully written ${values['rebuild-gib']} GiB volume from 2 RW sources (the new replica copies each range straight from a source), ` +
      "against `cp -r --sparse=always` of the same layer files, and that copy followed by the `sync` that makes it durable as the rebuild's is. " +
      `Each pair meets the same memory condition: *returned*, nothing deleted for ${values['settle-seconds']} s before it starts, so the pages freed last went back to the host ` +
      `(free page reporting ${reporting === undefined ? 'unknown' : reporting ? 'on' : 'off'} here); *reused*, started right after a copy of the same files, held in the page cache, was deleted:`,
    '',
    ...rebuildTable(rounds),
  ];
}

async function rebuildOnly(): Promise<void> {
  const rounds = await rebuildRun(Number(values['rebuild-gib']), 3);
  process.stdout.write(`${rebuildLines(rounds).join('\n')}\n`);
  fs.rmSync(work, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const plain = plainFileRuns();
  process.stderr.write('plain file done\n');
  const one = await engineRuns(1);
  process.stderr.write('1 replica done\n');
  const three = await engineRuns(3);
  process.stderr.write('3 replicas done\n');
  const oneLocal = await engineRuns(1, 'local');
  const threeLocal = await engineRuns(3, 'local');
  process.stderr.write('local replica runs done\n');
  const inline = await engineRuns(3, 0);
  const worker = await engineRuns(3, 1);
  process.stderr.write('worker modes done\n');
  const rebuild = await rebuildRun(Number(values['rebuild-gib']), 3);
  process.stderr.write('rebuild done\n');

  const iops = (result: Result) => Math.round(result.operations / result.seconds).toLocaleString('en');
  const mibps = (result: Result) => `${Math.round(result.bytes / result.seconds / 1024 / 1024)} MiB/s`;
  const ratio = (a: Result, b: Result) =>
    `${Math.round((a.operations / a.seconds / (b.operations / b.seconds)) * 100)} %`;
  const row = (label: string, key: string, plainKey: string, format: (result: Result) => string) => {
    const [file, r1, r3] = [plain.get(plainKey)!, one.get(key)!, three.get(key)!];
    return `| ${label} | ${format(file)} | ${format(r1)} (${r1.cpuMicrosecondsPerOperation.toFixed(0)} µs) | ${format(r3)} (${r3.cpuMicrosecondsPerOperation.toFixed(0)} µs) | **${ratio(r1, file)}** | **${ratio(r3, r1)}** |`;
  };
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, Node ${process.version}, checksums: ${checksumImplementation}. ` +
      `Engine in the benchmark process, replicas as \`hornbill replica\` processes on 127.0.0.1, ${SIZE / 1024 / 1024} MiB volume, ${SECONDS} s per workload, each volume and the plain file written through once before the timed workloads (untimed). ` +
      'In brackets: CPU time per I/O summed over every process. ' +
      `The plain file's 1 MiB writes cycle through 8 buffers, as the engine's 8 requests in flight do (from one buffer, which stays in the CPU's cache: ${mibps(plain.get('seqwrite-one-buffer')!)}).`,
    '',
    'Command: `npm run bench:engine -- --write-results`',
    '',
    '| workload | plain file (sync) | engine, 1 replica | engine, 3 replicas | 1 replica / file | 3 replicas / 1 replica |',
    '|---|---|---|---|---|---|',
    row('4 KiB random write, QD1', 'randwrite-qd1', 'randwrite', iops),
    row('4 KiB random write, QD32', 'randwrite-qd32', 'randwrite', iops),
    row('4 KiB random read, QD1', 'randread-qd1', 'randread', iops),
    row('4 KiB random read, QD32', 'randread-qd32', 'randread', iops),
    row('1 MiB sequential write, QD8', 'seqwrite', 'seqwrite', mibps),
    '',
    'The same engine with its first replica served by its own thread and reached in memory (`hornbill engine --local-replica`;',
    'the other replicas are processes over TCP):',
    '',
    '| workload | plain file (sync) | engine, 1 local replica | engine, 1 local + 2 remote | 1 local / file | 3 (1 local) / 1 local | 1 local / 1 over TCP |',
    '|---|---|---|---|---|---|---|',
    ...[
      ['4 KiB random write, QD1', 'randwrite-qd1', 'randwrite'],
      ['4 KiB random write, QD32', 'randwrite-qd32', 'randwrite'],
      ['4 KiB random read, QD1', 'randread-qd1', 'randread'],
      ['4 KiB random read, QD32', 'randread-qd32', 'randread'],
      ['1 MiB sequential write, QD8', 'seqwrite', 'seqwrite'],
    ].map(([label, key, plainKey]) => {
      const [file, l1, l3, r1] = [
        plain.get(plainKey)!,
        oneLocal.get(key)!,
        threeLocal.get(key)!,
        one.get(key)!,
      ];
      const format = key === 'seqwrite' ? mibps : iops;
      return `| ${label} | ${format(file)} | ${format(l1)} (${l1.cpuMicrosecondsPerOperation.toFixed(0)} µs) | ${format(l3)} (${l3.cpuMicrosecondsPerOperation.toFixed(0)} µs) | **${ratio(l1, file)}** | **${ratio(l3, l1)}** | **${ratio(l1, r1)}** |`;
    }),
    '',
    'The same engine behind the SharedArrayBuffer rings (the path a frontend takes), 3 replicas: 0 workers (the engine on the',
    "caller's thread) against 1 worker (the engine's fan-out and checksums on their own thread):",
    '',
    '| workload | 0 workers | 1 worker | 1 / 0 |',
    '|---|---|---|---|',
    ...['randwrite-qd1', 'randwrite-qd32', 'randread-qd1', 'randread-qd32', 'seqwrite'].map((key) => {
      const [a, b] = [inline.get(key)!, worker.get(key)!];
      const format = key === 'seqwrite' ? mibps : iops;
      return `| ${key} | ${format(a)} (${a.cpuMicrosecondsPerOperation.toFixed(0)} µs) | ${format(b)} (${b.cpuMicrosecondsPerOperation.toFixed(0)} µs) | **${ratio(b, a)}** |`;
    }),
    '',
    ...rebuildLines(rebuild),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values['write-results'])
    writeResultsSection('engine', 'Engine over replica processes (bench/engine, issue 3)', lines.join('\n'));
  fs.rmSync(work, { recursive: true, force: true });
}

await (values.part === 'rebuild' ? rebuildOnly() : main());
