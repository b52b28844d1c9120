import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { buildJobs, formatJobFile, parseJobFileText, readJobFile } from '../../../src/bench/job-file.ts';
import {
  applyJobOption,
  defaultJobOptions,
  parseBlockSizeRange,
  parseFioSize,
  parseFioTime,
  verifyUnitBytes,
} from '../../../src/bench/options.ts';
import { groupJobs } from '../../../src/bench/run.ts';
import { parseTarget } from '../../../src/bench/target.ts';
import { jobsFromCommandLine, parseBenchArguments } from '../../../src/cli/bench.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { requireTool } from '../../helpers/tools.ts';

const PROFILES = path.join(import.meta.dirname, '..', '..', '..', 'bench', 'profiles');

describe('fio values', () => {
  test("sizes use fio's base 1024 for every suffix", () => {
    assert.equal(parseFioSize('4k'), 4096);
    assert.equal(parseFioSize('4K'), 4096);
    assert.equal(parseFioSize('4KiB'), 4096);
    assert.equal(parseFioSize('4kb'), 4096);
    assert.equal(parseFioSize('128k'), 131072);
    assert.equal(parseFioSize('1M'), 1048576);
    assert.equal(parseFioSize('2g'), 2 * 1024 ** 3);
    assert.equal(parseFioSize('512'), 512);
    assert.equal(parseFioSize('4x'), null);
    assert.equal(parseFioSize(''), null);
  });

  test("times default to seconds and take fio's units", () => {
    assert.equal(parseFioTime('30'), 30_000);
    assert.equal(parseFioTime('30s'), 30_000);
    assert.equal(parseFioTime('500ms'), 500);
    assert.equal(parseFioTime('2m'), 120_000);
    assert.equal(parseFioTime('1h'), 3_600_000);
    assert.equal(parseFioTime('soon'), null);
  });

  test('block sizes: one size, a range, and read,write pairs', () => {
    assert.deepEqual(parseBlockSizeRange('4k-64k'), { minimumBytes: 4096, maximumBytes: 65536 });
    const job = defaultJobOptions('j');
    applyJobOption(job, 'bs', '4k,64k', 'test');
    assert.deepEqual(job.readBlockSize, { minimumBytes: 4096, maximumBytes: 4096 });
    assert.deepEqual(job.writeBlockSize, { minimumBytes: 65536, maximumBytes: 65536 });
    applyJobOption(job, 'bsrange', '8k-16k', 'test');
    assert.deepEqual(job.writeBlockSize, { minimumBytes: 8192, maximumBytes: 16384 });
    for (const bad of ['100', '64k-4k', '4k-6k', '32M', 'big']) {
      assert.throws(
        () => applyJobOption(defaultJobOptions('j'), 'bs', bad, 'command line'),
        (error) => isHornbillError(error, 'CLI_USAGE'),
      );
    }
  });

  test('unknown options are errors; fio-only options are accepted and ignored', () => {
    const job = defaultJobOptions('j');
    applyJobOption(job, 'ioengine', 'libaio', 'f');
    applyJobOption(job, 'direct', '1', 'f');
    assert.equal(job.direct, true);
    assert.throws(
      () => applyJobOption(job, 'iodepht', '4', 'f'),
      (error) => isHornbillError(error, 'BENCH_PROFILE_INVALID'),
    );
    assert.throws(() => applyJobOption(job, 'rw', 'randread:8', 'f'), /offset modifiers/);
    assert.throws(() => applyJobOption(job, 'verify', 'md5', 'f'), /crc32c/);
    assert.throws(() => applyJobOption(job, 'iodepth', '0', 'f'), /from 1 to 1024/);
  });

  test('the verify unit is 4 KiB, or the largest power of two dividing every block size', () => {
    const job = defaultJobOptions('j');
    applyJobOption(job, 'rw', 'randrw', 't');
    applyJobOption(job, 'bs', '64k,16k', 't');
    assert.equal(verifyUnitBytes(job), 4096);
    applyJobOption(job, 'bs', '6k', 't');
    assert.equal(verifyUnitBytes(job), 2048);
    applyJobOption(job, 'bs', '512', 't');
    assert.equal(verifyUnitBytes(job), 512);
  });
});

describe('command line', () => {
  test('--opt value, --opt=value and bare flags; as in fio, options before --name are global options', () => {
    const line = parseBenchArguments([
      '--target=nbd://127.0.0.1:10809/vol',
      '--rw',
      'randrw',
      '--time_based',
      '--name',
      'db',
      '--rwmixread=70',
      '--runtime',
      '5',
      '--output-format',
      'json',
    ]);
    assert.equal(line.target, 'nbd://127.0.0.1:10809/vol');
    assert.equal(line.outputFormat, 'json');
    const { jobs, globalOptions } = jobsFromCommandLine(line);
    assert.deepEqual(globalOptions, { rw: 'randrw', time_based: '1' });
    assert.equal(jobs[0].name, 'db');
    assert.equal(jobs[0].timeBased, true);
    assert.equal(jobs[0].rwmixread, 70);
    assert.deepEqual(jobs[0].given, { name: 'db', rwmixread: '70', runtime: '5' });
    const unnamed = jobsFromCommandLine(parseBenchArguments(['--rw', 'read', '--size', '1M']));
    assert.equal(unnamed.globalOptions, null, "without --name every option is the job's");
    assert.deepEqual(unnamed.jobs[0].given, { name: 'bench', rw: 'read', size: '1M' });
    assert.throws(
      () => jobsFromCommandLine(parseBenchArguments(['--time_based'])),
      /time_based needs a runtime/,
    );
    assert.throws(() => parseBenchArguments(['--output-format', 'terse']), /normal or json/);
    assert.throws(() => parseBenchArguments(['job.fio']), /--profile/);
  });

  test('targets: iSCSI and NBD URLs, engine: names; anything else is a coded error', () => {
    assert.deepEqual(parseTarget('iscsi://127.0.0.1:3260/iqn.2026-11.io.hornbill:vol1/0'), {
      kind: 'iscsi',
      endpoint: { host: '127.0.0.1', port: 3260, targetName: 'iqn.2026-11.io.hornbill:vol1', lun: 0 },
    });
    assert.deepEqual(parseTarget('nbd://127.0.0.1/'), {
      kind: 'nbd',
      endpoint: { host: '127.0.0.1', port: 10809, exportName: '' },
    });
    assert.deepEqual(parseTarget('engine:vol1'), { kind: 'volume', name: 'vol1' });
    for (const bad of ['iscsi://h:1/iqn', 'http://h/x', 'nbd://h:99999/x', 'iscsi://h/iqn/lun', '/dev/sdb']) {
      assert.throws(
        () => parseTarget(bad),
        (error) => isHornbillError(error, 'BENCH_TARGET_INVALID'),
        bad,
      );
    }
  });
});

describe('fio job files', () => {
  const text = `
; a comment
# another
[global]
bs=4k
iodepth=\${HORNBILL_TEST_DEPTH}
runtime=10
time_based

[first]
rw=randread

[second]
stonewall
rw=randwrite
bs=8k

[global]
iodepth=2

[third]
rw=read
`;

  test('[global] sets defaults for the jobs after it; sections override; bare keys are 1', () => {
    process.env.HORNBILL_TEST_DEPTH = '32';
    const commandLine = defaultJobOptions('bench');
    applyJobOption(commandLine, 'runtime', '99', 'command line');
    applyJobOption(commandLine, 'numjobs', '2', 'command line');
    const { jobs, globalOptions } = buildJobs(parseJobFileText(text, 'test.fio'), 'test.fio', commandLine);
    assert.deepEqual(
      jobs.map((job) => [
        job.name,
        job.rw,
        job.iodepth,
        job.readBlockSize.minimumBytes,
        job.runtimeMs,
        job.numjobs,
        job.timeBased,
      ]),
      [
        ['first', 'randread', 32, 4096, 10_000, 2, true],
        ['second', 'randwrite', 32, 8192, 10_000, 2, true],
        ['third', 'read', 2, 4096, 10_000, 2, true],
      ],
      'the file overrides the command line (runtime), which still gives what the file does not (numjobs)',
    );
    assert.deepEqual(jobs[1].given, { stonewall: '1', rw: 'randwrite', bs: '8k' });
    assert.deepEqual(globalOptions, { runtime: '10', numjobs: '2', bs: '4k', iodepth: '2', time_based: '1' });
    assert.deepEqual(
      groupJobs(jobs).map((group) => group.map((job) => job.name)),
      [['first'], ['second', 'third']],
    );
    assert.deepEqual(
      buildJobs(
        parseJobFileText(text, 'test.fio'),
        'test.fio',
        defaultJobOptions('bench'),
        'second',
      ).jobs.map((job) => job.name),
      ['second'],
    );
  });

  test('bad job files are BENCH_PROFILE_INVALID errors naming the file and line', () => {
    delete process.env.HORNBILL_TEST_UNSET;
    const cases: [string, RegExp][] = [
      ['rw=read\n', /bad\.fio:1: an option before the first \[section\]/],
      ['[j]\nrw=read\ninclude other.fio\n', /include is not supported/],
      [`[j]\nsize=${'$'}{HORNBILL_TEST_UNSET}\n`, /HORNBILL_TEST_UNSET is not set/],
      ['[j]\nbogus_option=1\n', /unknown or unsupported fio option "bogus_option"/],
      ['[global]\nbs=4k\n', /describes no job/],
    ];
    for (const [body, message] of cases) {
      assert.throws(
        () => buildJobs(parseJobFileText(body, 'bad.fio'), 'bad.fio', defaultJobOptions('bench')),
        (error) => isHornbillError(error, 'BENCH_PROFILE_INVALID') && message.test(error.message),
        body,
      );
    }
  });

  test('formatJobFile writes back what parseJobFileText reads', () => {
    process.env.HORNBILL_TEST_DEPTH = '32';
    const sections = parseJobFileText(text, 'test.fio');
    const again = parseJobFileText(formatJobFile(sections, 'round trip'), 'again.fio');
    assert.deepEqual(
      again.map((section) => [section.name, section.options]),
      sections.map((section) => [section.name, section.options]),
    );
  });
});

describe('bench/profiles', () => {
  const expected: Record<string, [string, string, number, number, number][]> = {
    iops: [
      ['rand-read-iops', 'randread', 4096, 64, 50],
      ['rand-write-iops', 'randwrite', 4096, 64, 50],
    ],
    bandwidth: [
      ['seq-read-bandwidth', 'read', 131072, 64, 50],
      ['seq-write-bandwidth', 'write', 131072, 64, 50],
    ],
    latency: [
      ['rand-read-latency', 'randread', 4096, 1, 50],
      ['rand-write-latency', 'randwrite', 4096, 1, 50],
    ],
    mixed: [['db-mixed-70-30', 'randrw', 8192, 16, 70]],
    frontends: [
      ['rand-read-qd1', 'randread', 4096, 1, 50],
      ['rand-write-qd1', 'randwrite', 4096, 1, 50],
      ['rand-read-qd32', 'randread', 4096, 32, 50],
      ['rand-write-qd32', 'randwrite', 4096, 32, 50],
      ['seq-read-1m', 'read', 1048576, 8, 50],
      ['seq-write-1m', 'write', 1048576, 8, 50],
    ],
  };

  test('the kbench set, the 70/30 mix and the frontends set, each job in its own group', () => {
    for (const [name, jobs] of Object.entries(expected)) {
      const file = path.join(PROFILES, `${name}.fio`);
      const set = buildJobs(readJobFile(file), file, defaultJobOptions('bench'));
      assert.deepEqual(
        set.jobs.map((job) => [job.name, job.rw, job.readBlockSize.minimumBytes, job.iodepth, job.rwmixread]),
        jobs,
        name,
      );
      assert.equal(groupJobs(set.jobs).length, jobs.length, `${name}: jobs run one after another`);
      assert.ok(set.jobs.every((job) => job.timeBased && job.runtimeMs > 0));
    }
  });

  test('real fio accepts every profile with its nbd engine', (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    for (const name of Object.keys(expected)) {
      const result = spawnSync(
        'fio',
        [
          '--parse-only',
          '--ioengine=nbd',
          '--uri=nbd://127.0.0.1:10809/x',
          path.join(PROFILES, `${name}.fio`),
        ],
        { encoding: 'utf8' },
      );
      assert.equal(result.status, 0, `${name}: ${result.stderr}`);
    }
    // And fio does reject a file with a bad option, so the check above means something.
    const bad = spawnSync('fio', ['--parse-only', '--name=x', '--bogus_option=1'], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
  });
});
