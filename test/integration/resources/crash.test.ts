import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jsonEqual } from '../../../src/resources/json.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import {
  STATE_FILE_NAME,
  StateDatabase,
  type StoredObject,
} from '../../../src/resources/store/embedded-database.ts';
import { tempDirectory } from '../../helpers/temp.ts';

/**
 * Crash safety of the embedded state store (issue 5): a child writes at full speed and is
 * killed with SIGKILL at a random moment, CRASH_ITERATIONS times over the same store. After
 * every kill the store opens (through the child-process probe) and:
 * - every acknowledged write is there: the revision is at least the last acknowledged one,
 *   and the change log holds each acknowledged change at its resourceVersion;
 * - verify() finds the objects, indexes, change log and Events consistent;
 * - replaying the whole change log gives exactly the stored objects;
 * - the store takes new writes.
 */

const ITERATIONS = Number(process.env.CRASH_ITERATIONS ?? 10);
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 100000);
const writer = path.join(import.meta.dirname, 'crash-writer.ts');

interface LogEntry {
  phase: 'ready' | 'start' | 'ack';
  operation?: string;
  revision: number;
  kind?: string;
  name?: string;
  resourceVersion?: string;
  generation?: number;
}

function readLog(logPath: string): LogEntry[] {
  if (!fs.existsSync(logPath)) return [];
  const lines = fs.readFileSync(logPath, 'utf8').split('\n');
  // The last line may be cut by the kill.
  return lines.filter((line) => line.endsWith('}')).map((line) => JSON.parse(line) as LogEntry);
}

async function waitForReady(
  logPath: string,
  child: ReturnType<typeof spawn>,
  stderr: () => string,
): Promise<void> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`writer exited:\n${stderr()}`);
    if (readLog(logPath).some((entry) => entry.phase === 'ready')) return;
    await sleep(5);
  }
  throw new Error(`the writer did not open the store within 10 s:\n${stderr()}`);
}

/**
 * Checks that the change log holds each acknowledged change at its resourceVersion, and that
 * folding the whole log gives exactly the stored objects.
 */
async function checkReplay(
  directory: string,
  acks: LogEntry[],
): Promise<{ objects: number; changes: number }> {
  const database = StateDatabase.open(path.join(directory, STATE_FILE_NAME), { readOnly: true });
  try {
    for (const ack of acks) {
      if (ack.resourceVersion === undefined) continue;
      const change = database.getChange(Number(ack.resourceVersion));
      assert.equal(
        change?.object.metadata.name,
        ack.name,
        `change ${ack.resourceVersion} is not ${ack.name}`,
      );
      assert.equal(change?.object.metadata.generation, ack.generation);
      if (change?.type === 'DELETED')
        assert.ok(['delete', 'release'].includes(ack.operation ?? ''), ack.operation);
    }
    const replayed = new Map<string, StoredObject>();
    let changes = 0;
    for (const [, change] of database.allChanges()) {
      changes++;
      if (change.type === 'DELETED') replayed.delete(change.key);
      else replayed.set(change.key, change.object);
    }
    const stored = new Map(database.allObjects());
    assert.deepEqual([...stored.keys()].sort(), [...replayed.keys()].sort());
    for (const [key, object] of stored)
      assert.ok(jsonEqual(object, replayed.get(key)), `${key} differs from its replay`);
    return { objects: stored.size, changes };
  } finally {
    await database.close();
  }
}

test(`the embedded store survives ${ITERATIONS} kills at random moments (seed ${SEED})`, async (t) => {
  const root = tempDirectory(t);
  const directory = path.join(root, 'state');
  let random = SEED || 1;
  let acknowledged = 0;
  let inFlightApplied = 0;
  for (let iteration = 0; iteration < ITERATIONS; iteration++) {
    const logPath = path.join(root, `log-${iteration}`);
    const child = spawn(process.execPath, [writer, directory, String(SEED * 100 + iteration), logPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    await waitForReady(logPath, child, () => stderr);
    random = (Math.imul(random, 1103515245) + 12345) >>> 0;
    await sleep(30 + (random % 300));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL', `writer ended on its own:\n${stderr}`);

    const entries = readLog(logPath);
    const acks = entries.filter((entry) => entry.phase === 'ack');
    const lastAcknowledged = Math.max(entries[0].revision, ...acks.map((entry) => entry.revision));
    acknowledged += acks.length;

    const store = await openEmbeddedStore({ directory, changeLogLimit: 1_000_000 });
    try {
      assert.ok(
        store.revision >= lastAcknowledged,
        `revision ${store.revision} < acknowledged ${lastAcknowledged}`,
      );
      if (store.revision > lastAcknowledged) inFlightApplied++;
      const report = await store.verify();
      assert.deepEqual(report.problems, []);
      await store.create({
        kind: 'Setting',
        metadata: { name: 'default-replica-count', namespace: `after-kill-${iteration}` },
        spec: { value: '2' },
      });
    } finally {
      await store.close();
    }
    await checkReplay(directory, acks);
  }
  const final = await checkReplay(directory, []);
  t.diagnostic(
    `${acknowledged} acknowledged operations over ${ITERATIONS} kills; an unacknowledged write was kept ${inFlightApplied} times; ${final.objects} objects, ${final.changes} changes`,
  );
  assert.ok(acknowledged > ITERATIONS, 'the writer made progress');
});
