import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runScript } from '../../helpers/processes.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import { requireTool } from '../../helpers/tools.ts';

/**
 * Issue 7, must-hold 3: bench/compare runs end to end — the local file, tgtd, qemu-nbd and
 * Hornbill volumes of 1 and 3 replicas over iSCSI and NBD — in a few seconds of load per
 * peer. Figures are not checked against each other (the machine is shared); that every
 * peer ran every job without an error, that the tables were printed and that nothing was
 * left behind is.
 */

const RUNNER = path.join(import.meta.dirname, '..', '..', '..', 'bench', 'compare', 'run.ts');
const RESULTS = path.join(import.meta.dirname, '..', '..', '..', 'bench', 'RESULTS.md');

test('bench/compare smoke run: every peer, every job, no error, nothing left behind', async (t) => {
  for (const [command, debianPackage] of [
    ['fio', 'fio'],
    ['tgtd', 'tgt'],
    ['tgtadm', 'tgt'],
    ['qemu-nbd', 'qemu-utils'],
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
  ]) {
    if (!requireTool(t, command, debianPackage)) return;
  }
  if (process.getuid?.() !== 0 && process.env.HORNBILL_REQUIRE_TOOLS !== '1') {
    t.skip('tgtd needs root for its private mount namespace');
    return;
  }
  const directory = tempDirectory(t, 'hornbill-compare-smoke-');
  const output = path.join(directory, 'figures.json');
  const resultsBefore = fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, 'utf8') : '';
  const workBefore = new Set(
    fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith('hornbill-compare-')),
  );
  const { code, stdout, stderr } = await runScript(RUNNER, [
    '--runtime',
    '0.5',
    '--ramp',
    '0',
    '--size',
    '32M',
    '--profiles',
    'latency,mixed',
    // The engines host one replica each (the others are processes): the path with more parts.
    '--local-replica',
    '--output',
    output,
  ]);
  assert.equal(code, 0, `${stdout}\n${stderr}`);

  const figures = JSON.parse(fs.readFileSync(output, 'utf8')) as {
    results: Record<
      string,
      Record<string, { job: string; readIops: number; writeIops: number; error: number }[]>
    >;
  };
  const peers = [
    'local',
    'tgtd',
    'qemu-nbd',
    'hornbill-1-iscsi',
    'hornbill-1-nbd',
    'hornbill-3-iscsi',
    'hornbill-3-nbd',
  ];
  assert.deepEqual(Object.keys(figures.results).sort(), [...peers].sort());
  for (const peer of peers) {
    const latency = figures.results[peer].latency;
    const mixed = figures.results[peer].mixed;
    assert.ok(
      Array.isArray(latency) && Array.isArray(mixed),
      `${peer}: ${JSON.stringify(figures.results[peer])}`,
    );
    assert.deepEqual(
      latency.map((measurement) => measurement.job),
      ['rand-read-latency', 'rand-write-latency'],
      peer,
    );
    assert.ok(latency[0].readIops > 0 && latency[0].writeIops === 0, `${peer} read job`);
    assert.ok(latency[1].writeIops > 0 && latency[1].readIops === 0, `${peer} write job`);
    assert.ok(mixed[0].readIops > 0 && mixed[0].writeIops > 0, `${peer} mixed job`);
    for (const measurement of [...latency, ...mixed])
      assert.equal(measurement.error, 0, `${peer} ${measurement.job}`);
  }
  assert.match(
    stdout,
    /^\| profile: job +\| unit +\| local file +\| tgtd +\| qemu-nbd +\| HB 1r iSCSI +\| HB 1r NBD +\| HB 3r iSCSI +\| HB 3r NBD +\|$/m,
  );
  assert.match(
    stdout,
    /^\| mixed: db-mixed-70-30 +\| \*\*\d+ %\*\* +\| \*\*\d+ %\*\* +\| \*\*\d+ %\*\* +\| \*\*\d+ %\*\* +\|$/m,
  );
  assert.match(stdout, /^Measured .* commit .*, \d+ cores/m);
  assert.match(stdout, /each engine hosts one of its replicas on its own thread/);
  assert.equal(
    fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, 'utf8') : '',
    resultsBefore,
    'without --write-results RESULTS.md is untouched',
  );
  const workAfter = fs
    .readdirSync(os.tmpdir())
    .filter((name) => name.startsWith('hornbill-compare-') && !workBefore.has(name));
  assert.deepEqual(workAfter, [], 'the work folder is removed');
});
