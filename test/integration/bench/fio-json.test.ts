import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { benchCommand } from '../../../src/cli/bench.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import { requireTool } from '../../helpers/tools.ts';
import { startServer } from '../../unit/dataplane/nbd/fixture.ts';

/**
 * Issue 7, must-hold 2: `hornbill bench --output-format json` is fio's JSON. The same job
 * runs through real fio (--ioengine=nbd) and through `hornbill bench`, against the same
 * Hornbill NBD export, and the two documents must have the same keys, in the same order,
 * with values of the same types, at every level (the contents of "job options" and
 * "global options" differ by design: fio lists its engine and URI there).
 */

const run = promisify(execFile);

/** The structure of a JSON value: key order and value types, not the values. */
function shape(value: unknown, key = ''): unknown {
  if (key === 'job options' || key === 'global options') return 'object';
  if (Array.isArray(value)) return value.length === 0 ? [] : [shape(value[0])];
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([name, child]) => [name, shape(child, name)]));
  return typeof value;
}

/** Lists differences as paths, so that a failure says which key differs. */
function differences(ours: unknown, theirs: unknown, where = '$'): string[] {
  if (typeof ours !== 'object' || typeof theirs !== 'object' || ours === null || theirs === null)
    return ours === theirs
      ? []
      : [`${where}: ${JSON.stringify(ours)} against fio's ${JSON.stringify(theirs)}`];
  const ourKeys = Object.keys(ours);
  const theirKeys = Object.keys(theirs);
  const found: string[] = [];
  if (ourKeys.join(',') !== theirKeys.join(','))
    found.push(`${where}: keys [${ourKeys.join(', ')}] against fio's [${theirKeys.join(', ')}]`);
  for (const key of theirKeys)
    if (key in ours)
      found.push(
        ...differences(
          (ours as Record<string, unknown>)[key],
          (theirs as Record<string, unknown>)[key],
          `${where}.${key}`,
        ),
      );
  return found;
}

async function bothTools(
  t: TestContext,
  args: string[],
  profile?: string,
): Promise<{ ours: unknown; fio: unknown }> {
  const fixture = await startServer(t, { sizeBytes: 64 * 1024 * 1024, name: 'vol' });
  const uri = `nbd://127.0.0.1:${fixture.port}/vol`;
  const directory = tempDirectory(t, 'hornbill-bench-json-');
  const output = path.join(directory, 'fio.json');
  const profileArgs = profile === undefined ? [] : [profile];
  // A job on fio's command line starts at --name; options before it would be global options.
  const engine = ['--ioengine=nbd', `--uri=${uri}`];
  const fioArgs = args[0]?.startsWith('--name=')
    ? [args[0], ...engine, ...args.slice(1)]
    : [...engine, ...args];
  await run('fio', [...fioArgs, '--output-format=json', `--output=${output}`, ...profileArgs], {
    cwd: directory,
    timeout: 120_000,
  });
  let printed = '';
  const code = await benchCommand(
    [
      '--target',
      uri,
      ...args,
      '--output-format',
      'json',
      ...(profile === undefined ? [] : ['--profile', profile]),
    ],
    (text) => {
      printed += text;
    },
    () => {},
  );
  assert.equal(code, 0);
  return { ours: JSON.parse(printed), fio: JSON.parse(fs.readFileSync(output, 'utf8')) };
}

function assertSameShape(ours: unknown, fio: unknown): void {
  assert.deepEqual(differences(shape(ours), shape(fio)), []);
}

describe('hornbill bench --output-format json against fio 3.33', () => {
  test('a command-line job: randrw 70/30', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const { ours, fio } = await bothTools(t, [
      '--name=mixed',
      '--rw=randrw',
      '--rwmixread=70',
      '--bs=4k',
      '--iodepth=8',
      '--size=16M',
      '--runtime=1',
      '--time_based',
    ]);
    assertSameShape(ours, fio);
    const job = (ours as { jobs: { jobname: string; read: { iops: number }; write: { iops: number } }[] })
      .jobs[0];
    assert.equal(job.jobname, 'mixed');
    assert.ok(job.read.iops > job.write.iops && job.write.iops > 0);
  });

  test('a job file with [global] and two jobs in two groups (a bench/profiles layout)', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const directory = tempDirectory(t, 'hornbill-bench-profile-');
    const profile = path.join(directory, 'latency.fio');
    fs.writeFileSync(
      profile,
      '[global]\nbs=4k\niodepth=1\nsize=16M\ntime_based=1\nruntime=500ms\n\n[rand-read]\nrw=randread\n\n[rand-write]\nstonewall\nrw=randwrite\n',
    );
    const { ours, fio } = await bothTools(t, [], profile);
    assertSameShape(ours, fio);
    assert.deepEqual(
      (ours as { jobs: { jobname: string; groupid: number }[] }).jobs.map((job) => [
        job.jobname,
        job.groupid,
      ]),
      (fio as { jobs: { jobname: string; groupid: number }[] }).jobs.map((job) => [job.jobname, job.groupid]),
    );
    assert.deepEqual((ours as Record<string, unknown>)['global options'], {
      bs: '4k',
      iodepth: '1',
      size: '16M',
      time_based: '1',
      runtime: '500ms',
    });
  });

  test('numjobs with group_reporting, and continue_on_error (total_err, first_error)', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const { ours, fio } = await bothTools(t, [
      '--name=clones',
      '--rw=randread',
      '--bs=4k',
      '--iodepth=4',
      '--numjobs=2',
      '--group_reporting',
      '--continue_on_error=all',
      '--size=8M',
      '--runtime=500ms',
      '--time_based',
    ]);
    assertSameShape(ours, fio);
    const jobs = (ours as { jobs: Record<string, unknown>[] }).jobs;
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].total_err, 0);
  });
});
