import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IscsiTarget } from '../../src/dataplane/iscsi/target.ts';
import { StoreBlockDevice } from '../../src/dataplane/store-block-device.ts';
import { ReplicaStore } from '../../src/storage/replica-store.ts';
import { tempDirectory } from '../helpers/temp.ts';
import { requireTool } from '../helpers/tools.ts';
import {
  countByFamily,
  covers,
  documentedOutcomes,
  parseCunitOutput,
  type TestResult,
} from './cunit-results.ts';

/**
 * Must-hold 1: libiscsi's iscsi-test-cu against a Hornbill volume (an IscsiTarget over one
 * replica store). Every test of the families issue 4 lists runs; the test fails when any of
 * them fails or is skipped without docs/conformance.md saying why.
 */

const SCSI_FAMILIES = [
  'SCSI.TestUnitReady',
  'SCSI.Inquiry',
  'SCSI.ReadCapacity10',
  'SCSI.ReadCapacity16',
  'SCSI.Read6',
  'SCSI.Read10',
  'SCSI.Read12',
  'SCSI.Read16',
  'SCSI.Write10',
  'SCSI.Write12',
  'SCSI.Write16',
  'SCSI.WriteVerify10',
  'SCSI.WriteVerify16',
  'SCSI.Verify10',
  'SCSI.Verify16',
  'SCSI.Unmap',
  'SCSI.WriteSame10',
  'SCSI.WriteSame16',
  'SCSI.CompareAndWrite',
  'SCSI.ModeSense6',
  'SCSI.ReportSupportedOpcodes',
  'SCSI.GetLBAStatus',
  'SCSI.Prin*',
  'SCSI.Prout*',
  'SCSI.Prefetch10',
  'SCSI.Prefetch16',
];

const DOCS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'conformance.md');

function runTool(args: string[], timeoutMs: number): Promise<{ output: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn('iscsi-test-cu', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ output, code });
    });
  });
}

test('iscsi-test-cu passes the issue 4 families against a Hornbill volume', {
  timeout: 300_000,
}, async (t) => {
  if (!requireTool(t, 'iscsi-test-cu', 'libiscsi-bin')) return;
  // After-hooks run in registration order: target and store close before the folder goes.
  let store: ReplicaStore | null = null;
  const target = new IscsiTarget({ port: 0, logger: () => {} });
  t.after(async () => {
    await target.close();
    store?.close();
  });
  const directory = tempDirectory(t);
  store = ReplicaStore.create(path.join(directory, 'replica'), { sizeBytes: 64 * 1024 * 1024 });
  target.addVolume('conformance', new StoreBlockDevice(store, 'conformance'));
  const { port } = await target.listen();
  const url = `iscsi://127.0.0.1:${port}/iqn.2026-11.io.hornbill:conformance/0`;

  const results: TestResult[] = [];
  const logs: string[] = [];
  for (const [prefix, selection] of [
    ['SCSI', SCSI_FAMILIES.join(',')],
    ['iSCSI', 'iSCSI.*'],
  ] as const) {
    // -d: destructive (write) tests allowed; the URL twice: a second session for the multi-initiator tests.
    const { output } = await runTool(['-d', '-t', selection, url, url], 240_000);
    logs.push(output);
    results.push(...parseCunitOutput(output, prefix));
  }
  const logFile = path.join(directory, 'iscsi-test-cu.log');
  fs.writeFileSync(logFile, logs.join('\n'));
  for (const counts of countByFamily(results)) {
    t.diagnostic(`${counts.family}: pass ${counts.pass}, fail ${counts.fail}, skip ${counts.skip}`);
  }
  assert.ok(results.length >= 150, `iscsi-test-cu ran ${results.length} tests`);
  for (const family of SCSI_FAMILIES) {
    const ran = results.some((result) => covers(family.endsWith('*') ? family : `${family}.*`, result.name));
    assert.ok(ran, `family ${family} ran`);
  }

  const documented = documentedOutcomes(fs.readFileSync(DOCS, 'utf8'));
  const unexplained: string[] = [];
  for (const result of results) {
    if (result.outcome === 'PASS') continue;
    const entry = [...documented].find(([pattern]) => covers(pattern, result.name));
    if (entry === undefined || entry[1].outcome !== result.outcome) {
      unexplained.push(`${result.name} ${result.outcome}: ${result.detail.slice(0, 3).join(' / ')}`);
    }
  }
  assert.deepEqual(
    unexplained,
    [],
    'every failure and skip is listed, with its reason, in docs/conformance.md',
  );
  // Documented failures that now pass should leave the list, so it stays true.
  for (const [pattern, entry] of documented) {
    const matching = results.filter((result) => covers(pattern, result.name));
    if (matching.length === 0) continue;
    assert.ok(
      matching.some((result) => result.outcome === entry.outcome),
      `${pattern} is documented as ${entry.outcome} but did not ${entry.outcome === 'FAIL' ? 'fail' : 'skip'}`,
    );
  }
});
