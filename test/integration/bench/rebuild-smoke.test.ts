import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runScript } from '../../helpers/processes.ts';
import { tempDirectory } from '../../helpers/temp.ts';

/**
 * bench/compare/rebuild.ts end to end on a small volume: every scenario runs, and the data
 * each rebuild moved is what it should be — the whole volume for a new replica, half of it
 * for the 4 KiB data / 4 KiB hole volume, only the changed blocks for a returning replica.
 * Times are not checked.
 */

const RUNNER = path.join(import.meta.dirname, '..', '..', '..', 'bench', 'compare', 'rebuild.ts');
const MiB = 1024 * 1024;

test('bench/compare/rebuild.ts smoke run: rebuild, re-sync, latency during a rebuild, holes', async (t) => {
  const directory = tempDirectory(t, 'hornbill-rebuild-smoke-');
  const output = path.join(directory, 'rebuild.json');
  const { code, stdout, stderr } = await runScript(RUNNER, ['--size', '32M', '--output', output]);
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  const result = JSON.parse(fs.readFileSync(output, 'utf8'));
  assert.equal(
    result.rebuild.progress.transferredBytes,
    32 * MiB,
    'a new replica receives the whole written volume',
  );
  assert.equal(
    result.holesRebuild.progress.transferredBytes,
    16 * MiB,
    'holes stay holes: half the volume is sent',
  );
  const changedBytes = result.resync.changedBlocks * 4096;
  assert.equal(result.resync.changedBlocks, 82);
  assert.ok(
    result.resync.progress.transferredBytes >= changedBytes &&
      result.resync.progress.transferredBytes < 4 * changedBytes,
    `a returning replica receives what changed (${result.resync.progress.transferredBytes} bytes for ${changedBytes})`,
  );
  assert.ok(
    result.fullCopy.allocatedBytes >= 32 * MiB && result.holesCopy.allocatedBytes < 20 * MiB,
    'cp kept the holes',
  );
  for (const latency of [result.quiet, result.busy.latency]) {
    assert.ok(latency.iops > 0 && latency.readP99Us > 0 && latency.writeP99Us > 0, JSON.stringify(latency));
  }
  assert.match(stdout, /^\| new replica, volume fully written \| /m);
  assert.match(stdout, /^\| during the rebuild of a new replica of the full volume/m);
});
