import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { benchJson } from '../../../src/bench/report-json.ts';
import { normalReport, summaryLines } from '../../../src/bench/report-normal.ts';
import { type BenchResult, BenchRun } from '../../../src/bench/run.ts';
import { parseTarget } from '../../../src/bench/target.ts';
import { jobsFromCommandLine, parseBenchArguments } from '../../../src/cli/bench.ts';
import { HornbillError } from '../../../src/errors.ts';
import { memoryTarget } from './memory-connection.ts';

/**
 * The load generator against an in-memory target: what it submits (sizes, offsets, queue
 * depth, mix), when it stops, how it counts errors, and what --verify finds.
 */

const KiB = 1024;
const MiB = 1024 * 1024;

async function bench(
  args: string[],
  target = memoryTarget(4 * MiB),
): Promise<{ result: BenchResult; target: ReturnType<typeof memoryTarget> }> {
  const { jobs } = jobsFromCommandLine(parseBenchArguments(args));
  const run = new BenchRun({
    jobs,
    target: parseTarget('nbd://127.0.0.1:1/memory'),
    onProgress: null,
    connect: target.connect,
  });
  return { result: await run.run(), target };
}

describe('hornbill bench load generator', () => {
  test('a sequential write without a runtime writes the size once, in order, block by block', async () => {
    const { result, target } = await bench(['--rw', 'write', '--bs', '4k', '--size', '1M', '--iodepth', '4']);
    const [connection] = target.connections;
    assert.equal(connection.log.length, 256);
    assert.deepEqual(
      connection.log.map((entry) => entry.offsetBytes),
      Array.from({ length: 256 }, (_, index) => index * 4 * KiB),
    );
    assert.ok(connection.log.every((entry) => entry.write && entry.lengthBytes === 4 * KiB));
    const [report] = result.reports;
    assert.equal(report.stats.write.bytes, MiB);
    assert.equal(report.stats.write.ios, 256);
    assert.equal(report.stats.read.ios, 0);
    assert.equal(report.stats.write.latency.count, 256);
    assert.ok(
      connection.maximumInFlight <= 4 && connection.maximumInFlight >= 2,
      `in flight ${connection.maximumInFlight}`,
    );
    assert.ok(connection.closed, 'the connection is closed at the end');
  });

  test('random reads visit every block of the region exactly once per pass', async () => {
    const { target } = await bench([
      '--rw',
      'randread',
      '--bs',
      '4k',
      '--size',
      '2M',
      '--offset',
      '1M',
      '--iodepth',
      '8',
    ]);
    const offsets = target.connections[0].log.map((entry) => entry.offsetBytes);
    assert.equal(offsets.length, 512);
    assert.equal(new Set(offsets).size, 512);
    assert.ok(offsets.every((offset) => offset >= MiB && offset < 3 * MiB && offset % (4 * KiB) === 0));
    const sorted = [...offsets].sort((a, b) => a - b);
    assert.notDeepEqual(offsets, sorted, 'the order is not sequential');
  });

  test('block size ranges give multiples of the smallest size within the range', async () => {
    const { target } = await bench(['--rw', 'randwrite', '--bs', '4k-64k', '--size', '4M', '--iodepth', '2']);
    const lengths = new Set(target.connections[0].log.map((entry) => entry.lengthBytes));
    for (const length of lengths)
      assert.ok(length % (4 * KiB) === 0 && length >= 4 * KiB && length <= 64 * KiB);
    assert.ok(lengths.size >= 8, `several sizes used: ${[...lengths].join(' ')}`);
  });

  test('randrw keeps close to rwmixread, with separate read and write statistics', async () => {
    const { result } = await bench([
      '--rw',
      'randrw',
      '--rwmixread',
      '70',
      '--bs',
      '4k',
      '--size',
      '4M',
      '--iodepth',
      '16',
    ]);
    const [report] = result.reports;
    const reads = report.stats.read.ios;
    const writes = report.stats.write.ios;
    assert.equal(reads + writes, 1024);
    assert.ok(
      reads / (reads + writes) > 0.64 && reads / (reads + writes) < 0.76,
      `read share ${reads / 1024}`,
    );
  });

  test('readwrite is sequential and mixed: one cursor through the region', async () => {
    const { target } = await bench(['--rw', 'readwrite', '--bs', '8k', '--size', '256k']);
    const log = target.connections[0].log;
    assert.deepEqual(
      log.map((entry) => entry.offsetBytes),
      Array.from({ length: 32 }, (_, index) => index * 8 * KiB),
    );
    assert.ok(log.some((entry) => entry.write) && log.some((entry) => !entry.write));
  });

  test('a time-based job runs until its runtime, wrapping around the region', async () => {
    const { result, target } = await bench([
      '--rw',
      'read',
      '--bs',
      '4k',
      '--size',
      '64k',
      '--runtime',
      '200ms',
      '--time_based',
    ]);
    const [report] = result.reports;
    assert.ok(report.stats.read.ios > 16, 'more I/Os than the region has blocks: it wrapped');
    assert.ok(target.connections[0].log.every((entry) => entry.offsetBytes < 64 * KiB));
    assert.ok(report.stats.runtimeMs > 0);
  });

  test('numjobs clones work on their own connections and regions; group_reporting merges them', async () => {
    const { result, target } = await bench([
      '--rw',
      'write',
      '--bs',
      '4k',
      '--size',
      '256k',
      '--numjobs',
      '3',
      '--offset_increment',
      '1M',
      '--group_reporting',
    ]);
    assert.equal(target.connections.length, 3);
    target.connections.forEach((connection, clone) => {
      assert.equal(connection.log.length, 64);
      assert.ok(
        connection.log.every(
          (entry) => entry.offsetBytes >= clone * MiB && entry.offsetBytes < clone * MiB + 256 * KiB,
        ),
      );
    });
    assert.equal(result.reports.length, 1);
    assert.equal(result.reports[0].cloneCount, 3);
    assert.equal(result.reports[0].stats.write.ios, 192);
    const separate = await bench(['--rw', 'write', '--bs', '4k', '--size', '256k', '--numjobs', '2']);
    assert.equal(separate.result.reports.length, 2, 'without group_reporting each clone is reported');
  });

  test('stonewall runs jobs one group after another', async () => {
    const { jobs } = jobsFromCommandLine(parseBenchArguments(['--rw', 'write', '--size', '64k']));
    const second = { ...jobs[0], name: 'second', rw: 'read' as const, stonewall: true };
    const target = memoryTarget(MiB);
    const run = new BenchRun({
      jobs: [jobs[0], second],
      target: parseTarget('nbd://h:1/x'),
      onProgress: null,
      connect: target.connect,
    });
    const result = await run.run();
    assert.deepEqual(
      result.reports.map((report) => [report.job.name, report.groupId]),
      [
        ['bench', 0],
        ['second', 1],
      ],
    );
  });

  test('an I/O error stops the job and is counted; continue_on_error keeps going and counts them all', async () => {
    const failing = memoryTarget(MiB);
    failing.hooks.failWith = (write, offset) =>
      write && offset === 64 * KiB
        ? new HornbillError('BENCH_NBD_IO_ERROR', `write at ${offset} failed`)
        : null;
    const stopped = await bench(
      ['--rw', 'write', '--bs', '4k', '--size', '256k', '--name', 'stops'],
      failing,
    );
    const [report] = stopped.result.reports;
    assert.equal(report.stats.errors.ioErrors, 1);
    assert.equal(report.stats.errors.firstErrno, 5);
    assert.ok(report.stats.write.ios < 64, 'the job stopped after the error');
    const json = benchJson(stopped.result, null) as { jobs: Record<string, unknown>[] };
    assert.equal(json.jobs[0].error, 5);
    assert.equal('total_err' in json.jobs[0], false, 'as fio: total_err only with continue_on_error');
    assert.match(
      normalReport(stopped.result),
      /errors: job stops: 1 failed I\/O.*BENCH_NBD_IO_ERROR: write at 65536 failed/,
    );

    const always = memoryTarget(MiB);
    always.hooks.failWith = (write, offset) =>
      write && offset % (64 * KiB) === 0 ? new HornbillError('BENCH_NBD_IO_ERROR', 'failed') : null;
    const continued = await bench(
      ['--rw', 'write', '--bs', '4k', '--size', '256k', '--continue_on_error', 'all'],
      always,
    );
    const [kept] = continued.result.reports;
    assert.equal(kept.stats.errors.ioErrors, 4);
    assert.equal(kept.stats.write.ios, 60, 'every other write completed');
    const keptJson = benchJson(continued.result, null) as { jobs: Record<string, unknown>[] };
    assert.equal(keptJson.jobs[0].total_err, 4);
    assert.equal(keptJson.jobs[0].first_error, 5);
    assert.match(summaryLines(continued.result)[0], /errors=4$/);
  });

  test("--verify: a block changed behind the load generator's back is reported with its offset", async () => {
    const target = memoryTarget(MiB);
    const written = await bench(
      ['--rw', 'write', '--bs', '16k', '--size', '512k', '--verify', 'crc32c', '--iodepth', '4'],
      target,
    );
    const [writeCheck] = written.result.verify;
    assert.equal(
      writeCheck.state.checkedUnits,
      128,
      'the read-back after the writes checked every 4 KiB block',
    );
    assert.equal(writeCheck.state.corruptedUnits, 0);
    assert.equal(
      written.result.reports[0].stats.read.bytes,
      512 * KiB,
      'read-back reads count as reads, as in fio',
    );

    target.data.fill(0x5a, 200 * KiB + 100, 200 * KiB + 101);
    const read = await bench(
      ['--rw', 'randread', '--bs', '8k', '--size', '512k', '--verify', 'crc32c', '--name', 'check'],
      target,
    );
    const [check] = read.result.verify;
    assert.equal(check.state.corruptedUnits, 1);
    assert.deepEqual(check.state.corruptions, [
      { offsetBytes: 200 * KiB, reason: 'checksum mismatch', job: 'check' },
    ]);
    assert.equal(read.result.reports[0].stats.errors.verifyErrors, 1);
    const json = benchJson(read.result, null) as { jobs: Record<string, unknown>[] };
    assert.equal(json.jobs[0].error, 84, 'EILSEQ, as fio reports a verify failure');
    assert.match(normalReport(read.result), /corrupted block at offset 204800: checksum mismatch/);
  });

  test('--verify catches a lost write: a block that keeps older data than was acknowledged', async () => {
    const target = memoryTarget(MiB);
    await bench(
      ['--rw', 'write', '--bs', '4k', '--size', '64k', '--verify', 'crc32c', '--do_verify=0'],
      target,
    );
    // From now on the target acknowledges writes to block 5 without storing them.
    target.hooks.dropWrite = (offset) => offset === 5 * 4 * KiB;
    const second = await bench(
      ['--rw', 'write', '--bs', '4k', '--size', '64k', '--verify', 'crc32c', '--name', 'again'],
      target,
    );
    const [check] = second.result.verify;
    assert.deepEqual(check.state.corruptions, [
      { offsetBytes: 20 * KiB, reason: 'stale data (lost write)', job: 'again' },
    ]);
  });

  test('--verify in a read-only job requires headers: a never-written block is reported', async () => {
    const target = memoryTarget(MiB);
    await bench(['--rw', 'write', '--bs', '4k', '--size', '32k', '--verify', 'crc32c'], target);
    const read = await bench(['--rw', 'read', '--bs', '4k', '--size', '64k', '--verify', 'crc32c'], target);
    const [check] = read.result.verify;
    assert.equal(check.state.checkedUnits, 16);
    assert.equal(check.state.corruptedUnits, 8, 'the 8 blocks past the written 32 KiB have no header');
    assert.equal(check.state.corruptions[0].reason, 'no header (zeros)');
    // A mixed job accepts blocks that were never written (zeros) and checks the rest.
    const mixed = await bench(
      ['--rw', 'randrw', '--bs', '4k', '--size', '256k', '--verify', 'crc32c', '--iodepth', '8'],
      memoryTarget(MiB),
    );
    assert.equal(mixed.result.verify[0].state.corruptedUnits, 0);
    assert.ok(mixed.result.verify[0].state.unwrittenUnits > 0);
  });
});
