/**
 * bench/storage: the replica store against a plain file, in the same run (issue 2).
 *
 *   npm run bench:storage [-- --seconds 3 --rounds 3 --size-mib 1024 --write-results]
 *
 * Workloads on a 1 GiB volume: 1 MiB sequential write (the fill), 4 KiB random write, 4 KiB
 * random read. The store does synchronous I/O on its thread (docs/on-disk-format.md), so
 * the plain-file baseline it is compared with is synchronous pwrite/pread on one file;
 * the libuv-threadpool (async fs) figure of the plain file is shown for context. Both
 * sides run the same offsets, alternating in rounds; the median round counts. Neither
 * side fsyncs (the store's flush is measured separately). Read cost against chain length
 * compares random reads through 10 and 2,000 layers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReplicaStore } from '../../src/storage/replica-store.ts';
import { parseBenchArguments, randomOffsets } from '../common.ts';
import { writeResultsSection } from '../results.ts';

const USAGE = `usage: node bench/storage/run.ts [--seconds 3] [--rounds 3] [--size-mib 1024] [--chain-layers 2000] [--write-results]`;

const values = parseBenchArguments(USAGE, {
  seconds: { type: 'string', default: '3' },
  rounds: { type: 'string', default: '3' },
  'size-mib': { type: 'string', default: '1024' },
  'chain-layers': { type: 'string', default: '2000' },
  'write-results': { type: 'boolean', default: false },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const SIZE = Number(values['size-mib']) * 1024 * 1024;
const BLOCKS = SIZE / 4096;
const workDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-bench-storage-'));

interface Target {
  name: string;
  write(offset: number, data: Buffer): void;
  read(offset: number, target: Buffer): void;
}

/** xorshift offsets, the same sequence for every target. */
function offsets(seed: number, count: number): Float64Array {
  return randomOffsets(seed, count, BLOCKS);
}

interface Measurement {
  operations: number;
  seconds: number;
  cpuMicroseconds: number;
}

function timed(run: () => number): Measurement {
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const operations = run();
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { operations, seconds, cpuMicroseconds: cpu.user + cpu.system };
}

function randomLoop(target: Target, write: boolean, seed: number): Measurement {
  const buffer = Buffer.alloc(4096, 0x5a);
  const list = offsets(seed, 1 << 22);
  return timed(() => {
    const deadline = performance.now() + SECONDS * 1000;
    let count = 0;
    while (count % 256 !== 0 || performance.now() < deadline) {
      const offset = list[count % list.length];
      if (write) {
        buffer.writeUInt32LE(count, 0);
        target.write(offset, buffer);
      } else {
        target.read(offset, buffer);
      }
      count++;
    }
    return count;
  });
}

/** 4 KiB random writes handed over 32 at a time (a replica server at queue depth 32): the store's writeBatch, the file's 32 pwrites. */
function randomBatches(
  target: Target & { writeBatch?: (requests: { offsetBytes: number; data: Buffer }[]) => void },
  seed: number,
): Measurement {
  const buffers = Array.from({ length: 32 }, (_, index) => Buffer.alloc(4096, index + 1));
  const requests = buffers.map((data) => ({ offsetBytes: 0, data }));
  const list = offsets(seed, 1 << 22);
  return timed(() => {
    const deadline = performance.now() + SECONDS * 1000;
    let count = 0;
    while (count % 256 !== 0 || performance.now() < deadline) {
      for (let index = 0; index < 32; index++)
        requests[index].offsetBytes = list[(count + index) % list.length];
      if (target.writeBatch !== undefined) target.writeBatch(requests);
      else for (const request of requests) target.write(request.offsetBytes, request.data);
      count += 32;
    }
    return count;
  });
}

function sequentialWrite(target: Target): Measurement {
  const buffer = Buffer.alloc(1024 * 1024);
  for (let index = 0; index < buffer.length; index += 4)
    buffer.writeUInt32LE((index * 2654435761) >>> 0, index);
  return timed(() => {
    for (let offset = 0; offset < SIZE; offset += buffer.length) {
      buffer.writeUInt32LE(offset, 0);
      target.write(offset, buffer);
    }
    return SIZE / buffer.length;
  });
}

function plainFile(name: string): Target & { fd: number } {
  const fd = fs.openSync(path.join(workDirectory, name), 'w+');
  fs.ftruncateSync(fd, SIZE);
  return {
    name: 'plain file (sync pwrite/pread)',
    fd,
    write: (offset, data) => {
      fs.writeSync(fd, data, 0, data.length, offset);
    },
    read: (offset, target) => {
      fs.readSync(fd, target, 0, target.length, offset);
    },
  };
}

function storeTarget(
  store: ReplicaStore,
): Target & { writeBatch: (requests: { offsetBytes: number; data: Buffer }[]) => void } {
  return {
    name: 'replica store (checksums on)',
    write: (offset, data) => store.write(offset, data),
    read: (offset, target) => store.read(offset, target),
    writeBatch: (requests) => store.writeBatch(requests),
  };
}

async function asyncFileRandom(fd: number, write: boolean, seed: number): Promise<Measurement> {
  const buffer = Buffer.alloc(4096, 0x5a);
  const list = offsets(seed, 1 << 22);
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  let count = 0;
  const operation = (offset: number) =>
    new Promise<void>((resolve, reject) => {
      const done = (error: Error | null) => (error === null ? resolve() : reject(error));
      if (write) fs.write(fd, buffer, 0, 4096, offset, done);
      else fs.read(fd, buffer, 0, 4096, offset, done);
    });
  while (performance.now() < deadline) await operation(list[count++ % list.length]);
  const cpu = process.cpuUsage(cpuBefore);
  return {
    operations: count,
    seconds: (performance.now() - start) / 1000,
    cpuMicroseconds: cpu.user + cpu.system,
  };
}

function median(measurements: Measurement[]): Measurement {
  const sorted = [...measurements].sort((a, b) => a.operations / a.seconds - b.operations / b.seconds);
  return sorted[Math.floor(sorted.length / 2)];
}

const rate = (m: Measurement) => m.operations / m.seconds;
const cpuPerOperation = (m: Measurement) => m.cpuMicroseconds / m.operations;

async function chainLengthReads(layers: number): Promise<Measurement> {
  const directory = path.join(workDirectory, `chain-${layers}`);
  const store = ReplicaStore.create(directory, { sizeBytes: 256 * 1024 * 1024 });
  const block = Buffer.alloc(4096, 1);
  // The same 64 Ki blocks of data in every case, spread over `layers` layers.
  const perLayer = Math.ceil(65536 / layers);
  for (let layer = 0; layer < layers; layer++) {
    for (let index = 0; index < perLayer; index++) {
      const blockNumber = (layer * perLayer + index) % 65536;
      store.write(blockNumber * 4096, block);
    }
    store.snapshot(`layer-${layer}`);
  }
  const list = offsets(7, 1 << 20).map((offset) => offset % (256 * 1024 * 1024));
  const buffer = Buffer.alloc(4096);
  const measurement = timed(() => {
    const deadline = performance.now() + SECONDS * 1000;
    let count = 0;
    while (count % 256 !== 0 || performance.now() < deadline) store.read(list[count++ % list.length], buffer);
    return count;
  });
  store.close();
  fs.rmSync(directory, { recursive: true, force: true });
  return measurement;
}

async function main(): Promise<void> {
  const plain = plainFile('plain.img');
  const store = ReplicaStore.create(path.join(workDirectory, 'replica'), { sizeBytes: SIZE });
  const targets = [plain, storeTarget(store)];
  const results = new Map<string, Measurement[]>();
  const record = (key: string, measurement: Measurement) =>
    results.set(key, [...(results.get(key) ?? []), measurement]);
  // The fill: each side is written once, sequentially, 1 MiB at a time (first writes allocate blocks).
  for (const target of targets) record(`seqwrite ${target.name}`, sequentialWrite(target));
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) record(`seqwrite-overwrite ${target.name}`, sequentialWrite(target));
    for (const target of targets) record(`randwrite ${target.name}`, randomLoop(target, true, 100 + round));
    for (const target of targets)
      record(`randwrite-batch ${target.name}`, randomBatches(target, 300 + round));
    for (const target of targets) record(`randread ${target.name}`, randomLoop(target, false, 200 + round));
    record('randwrite async', await asyncFileRandom(plain.fd, true, 100 + round));
    record('randread async', await asyncFileRandom(plain.fd, false, 200 + round));
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  const flushStart = performance.now();
  for (let index = 0; index < 200; index++) {
    store.write(((index * 997) % BLOCKS) * 4096, Buffer.alloc(4096, index + 1));
    store.flush();
  }
  const flushedWriteMicroseconds = ((performance.now() - flushStart) * 1000) / 200;
  store.close();
  fs.closeSync(plain.fd);

  const shortChain = await chainLengthReads(10);
  const longChain = await chainLengthReads(Number(values['chain-layers']));

  const row = (label: string, unit: 'IOPS' | 'MiB/s', key: string, scale = 1) => {
    const file = median(results.get(`${key} ${targets[0].name}`)!);
    const hornbill = median(results.get(`${key} ${targets[1].name}`)!);
    const asyncFile = results.get(
      `${key.replace('randwrite', 'randwrite async').replace('randread', 'randread async')}`,
    );
    const format = (m: Measurement) =>
      unit === 'IOPS' ? Math.round(rate(m)).toLocaleString('en') : (rate(m) * scale).toFixed(0);
    return `| ${label} | ${format(file)} ${unit} | ${asyncFile ? `${format(median(asyncFile))} ${unit}` : '—'} | ${format(hornbill)} ${unit} | **${((rate(hornbill) / rate(file)) * 100).toFixed(0)} %** | ${cpuPerOperation(file).toFixed(1)} / ${cpuPerOperation(hornbill).toFixed(1)} |`;
  };
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)}, commit ${commit()}, ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), ` +
      `Node ${process.version}, ${SIZE / 1024 / 1024} MiB volume in the page cache, ${ROUNDS} rounds of ${SECONDS} s, median round.`,
    '',
    'Command: `npm run bench:storage -- --write-results`',
    '',
    '| workload | plain file, sync | plain file, async fs | replica store | store / sync file | CPU µs per op (file / store) |',
    '|---|---|---|---|---|---|',
    row('4 KiB random write, QD1', 'IOPS', 'randwrite'),
    row('4 KiB random write, 32 per batch (QD32)', 'IOPS', 'randwrite-batch'),
    row('4 KiB random read, QD1', 'IOPS', 'randread'),
    row('1 MiB sequential write, first fill', 'MiB/s', 'seqwrite'),
    row('1 MiB sequential write, overwrite', 'MiB/s', 'seqwrite-overwrite'),
    '',
    `4 KiB write + flush (fdatasync of data and journal): ${flushedWriteMicroseconds.toFixed(0)} µs each.`,
    '',
    `Read cost against chain length (64 Ki blocks of data spread over the layers, random 4 KiB reads): ` +
      `10 layers ${Math.round(rate(shortChain)).toLocaleString('en')} IOPS (${cpuPerOperation(shortChain).toFixed(1)} µs CPU/read), ` +
      `${values['chain-layers']} layers ${Math.round(rate(longChain)).toLocaleString('en')} IOPS (${cpuPerOperation(longChain).toFixed(1)} µs CPU/read): ` +
      `**${((rate(longChain) / rate(shortChain)) * 100).toFixed(0)} %** of the short chain's rate.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values['write-results'])
    writeResultsSection(
      'storage',
      'Replica store vs a plain file (bench/storage, issue 2)',
      lines.join('\n'),
    );
  fs.rmSync(workDirectory, { recursive: true, force: true });
}

function commit(): string {
  try {
    const head = fs.readFileSync(path.join(import.meta.dirname, '..', '..', '.git', 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head.slice(0, 10);
    return fs
      .readFileSync(path.join(import.meta.dirname, '..', '..', '.git', head.slice(5)), 'utf8')
      .trim()
      .slice(0, 10);
  } catch {
    return 'unknown';
  }
}

await main();
