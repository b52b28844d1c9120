import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runScript } from '../../helpers/processes.ts';

/**
 * bench/engine end to end with tiny settings: every table is printed with a figure in every
 * cell — the engine over 1 and 3 replica processes, with its replica on its own thread, behind
 * the rings with 0 and 1 workers, and the rebuild against cp. Figures are not compared (the
 * machine is shared); RESULTS.md is untouched and no work folder is left behind.
 */

const ROOT = path.join(import.meta.dirname, '..', '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'RESULTS.md');

test('bench/engine smoke run: every table, every cell, nothing left behind', async () => {
  const resultsBefore = fs.readFileSync(RESULTS, 'utf8');
  const workBefore = new Set(
    fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith('hornbill-bench-engine-')),
  );
  const { code, stdout, stderr } = await runScript(path.join(ROOT, 'bench', 'engine', 'run.ts'), [
    '--seconds',
    '0.3',
    '--size-mib',
    '64',
    '--rebuild-gib',
    '0.0625',
    '--settle-seconds',
    '0',
  ]);
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  const rows = stdout
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| workload') && !line.startsWith('| round'));
  // Five workloads in each of the three tables, and three rebuild rounds of two memory conditions.
  assert.equal(rows.length, 21, stdout);
  for (const row of rows) {
    // A rebuild row names its memory condition in its second cell; every other cell is a figure.
    const cells = row
      .split('|')
      .slice(2, -1)
      .filter((cell) => !/^ (returned|reused) $/.test(cell));
    for (const cell of cells) assert.match(cell, /\d/, `every cell holds a figure: ${row}`);
  }
  assert.match(stdout, /engine, 1 local replica \| engine, 1 local \+ 2 remote/);
  assert.match(stdout, /Rebuild of a fully written 0\.0625 GiB volume from 2 RW sources/);
  const rounds = rows.filter((row) => /^\| \d \| (returned|reused) \| [\d.]+ s \(\d+ MiB\/s\)/.test(row));
  assert.equal(rounds.length, 6, stdout);
  assert.deepEqual(
    rounds.map((row) => row.split('|')[2].trim()),
    ['returned', 'reused', 'returned', 'reused', 'returned', 'reused'],
  );
  for (const round of rounds) assert.match(round, /\*\*\d+ %\*\* \| \*\*\d+ %\*\* \|$/);
  assert.equal(
    fs.readFileSync(RESULTS, 'utf8'),
    resultsBefore,
    'without --write-results RESULTS.md is untouched',
  );
  const left = fs
    .readdirSync(os.tmpdir())
    .filter((name) => name.startsWith('hornbill-bench-engine-') && !workBefore.has(name));
  assert.deepEqual(left, [], 'the work folder is removed');
});

test('bench/engine --part rebuild prints the rebuild table alone, and refuses --write-results', async () => {
  const { code, stdout, stderr } = await runScript(path.join(ROOT, 'bench', 'engine', 'run.ts'), [
    '--part',
    'rebuild',
    '--rebuild-gib',
    '0.0625',
    '--settle-seconds',
    '0',
  ]);
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  const rows = stdout.split('\n').filter((line) => /^\| \d \| (returned|reused) \|/.test(line));
  assert.equal(rows.length, 6, stdout);
  assert.doesNotMatch(stdout, /\| workload \|/, 'no engine workload table');
  const refused = await runScript(path.join(ROOT, 'bench', 'engine', 'run.ts'), [
    '--part',
    'rebuild',
    '--write-results',
  ]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--write-results needs --part all/);
  const badPart = await runScript(path.join(ROOT, 'bench', 'engine', 'run.ts'), ['--part', 'io']);
  assert.equal(badPart.code, 2);
  assert.match(badPart.stderr, /--part is all or rebuild/);
});
