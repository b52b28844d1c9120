/** SupervisedProcess: ready lines, failed starts, restart with back-off, stop without restart. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isHornbillError } from '../../../src/errors.ts';
import type { Logger, LogLevel } from '../../../src/logging.ts';
import { SupervisedProcess, type SupervisedProcessOptions } from '../../../src/manager/supervisor.ts';

/** A child that prints a ready line with its pid after `delayMs`, then waits for a signal. */
const READY_CHILD = `
  const delay = Number(process.argv[1] ?? 0);
  process.stderr.write('starting\\n');
  setTimeout(() => process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\\n'), delay);
  process.on('SIGTERM', () => { process.stderr.write('bye\\n'); process.exit(0); });
  setInterval(() => {}, 1000);
`;

function recorder(): {
  log: Logger;
  records: { level: LogLevel; message: string; details: Record<string, unknown> }[];
} {
  const records: { level: LogLevel; message: string; details: Record<string, unknown> }[] = [];
  return { log: (level, message, details) => records.push({ level, message, details }), records };
}

function child(
  options: Partial<SupervisedProcessOptions> & { script?: string; argument?: string },
): SupervisedProcess {
  const script = options.script ?? READY_CHILD;
  return new SupervisedProcess({
    name: 'child',
    command: process.execPath,
    args: () => ['-e', script, options.argument ?? '0'],
    log: options.log ?? (() => {}),
    restart: options.restart ?? false,
    backoff: options.backoff ?? { initialMs: 50, maximumMs: 200, resetAfterMs: 10_000 },
    readyTimeoutMs: options.readyTimeoutMs,
    onStderrLine: options.onStderrLine,
    detached: false,
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await sleep(20);
  }
}

test('start resolves with the ready line; stop ends the child with SIGTERM', async (t) => {
  const lines: string[] = [];
  const supervised = child({ onStderrLine: (line) => lines.push(line) });
  t.after(() => supervised.stop('SIGKILL'));
  const ready = await supervised.start();
  assert.equal(ready.ready, true);
  assert.equal(ready.pid, supervised.pid);
  assert.equal(supervised.running, true);
  await supervised.stop();
  assert.equal(supervised.running, false);
  assert.equal(alive(ready.pid as number), false);
  assert.deepEqual(lines, ['starting', 'bye']);
});

test('a child that exits before its ready line is PROCESS_START_FAILED with its stderr', async () => {
  const supervised = child({ script: "process.stderr.write('cannot open the store\\n'); process.exit(3)" });
  await assert.rejects(supervised.start(), (error: unknown) => {
    assert.ok(isHornbillError(error, 'PROCESS_START_FAILED'));
    assert.match(error.message, /exited \(3\) before it was ready/);
    assert.match(error.message, /cannot open the store/);
    return true;
  });
});

test('a child that never prints its ready line is killed after the ready timeout', async () => {
  const supervised = child({ argument: '60000', readyTimeoutMs: 300 });
  await assert.rejects(supervised.start(), /did not print its ready line in 300 ms/);
  await until(() => !supervised.running);
});

test('with restart, a child that dies is started again after the back-off, and stop ends that', async (t) => {
  const { log, records } = recorder();
  const readies: number[] = [];
  const supervised = new SupervisedProcess({
    name: 'node-1',
    command: process.execPath,
    args: () => ['-e', READY_CHILD, '0'],
    log,
    restart: true,
    backoff: { initialMs: 50, maximumMs: 200, resetAfterMs: 10_000 },
    onReady: (ready) => readies.push(ready.pid),
    detached: false,
  });
  t.after(() => supervised.stop('SIGKILL'));
  const first = await supervised.start();
  process.kill(first.pid, 'SIGKILL');
  await until(() => readies.length === 2);
  assert.notEqual(readies[1], first.pid);
  assert.equal(supervised.restarts, 1);
  assert.ok(
    records.some(
      (record) => record.message === 'process exited unexpectedly' && record.details.signal === 'SIGKILL',
    ),
  );
  assert.ok(
    records.some(
      (record) => record.message === 'restarting process after back-off' && record.details.delayMs === 50,
    ),
  );
  process.kill(readies[1], 'SIGKILL');
  await until(() => readies.length === 3);
  assert.ok(
    records.some(
      (record) => record.message === 'restarting process after back-off' && record.details.delayMs === 100,
    ),
    'the back-off doubles',
  );
  await supervised.stop();
  await sleep(300);
  assert.equal(readies.length, 3, 'a stopped child is not restarted');
  assert.equal(supervised.running, false);
});

test('without restart, a killed child stays down until start() is called', async (t) => {
  const supervised = child({});
  t.after(() => supervised.stop('SIGKILL'));
  const first = await supervised.start();
  await supervised.kill();
  assert.equal(alive(first.pid), false);
  await sleep(200);
  assert.equal(supervised.running, false);
  const second = await supervised.start();
  assert.notEqual(second.pid, first.pid);
  assert.equal(supervised.restarts, 1);
});

test('a restart that fails is retried with a longer back-off', async (t) => {
  const { log, records } = recorder();
  let starts = 0;
  const supervised = new SupervisedProcess({
    name: 'flaky',
    command: process.execPath,
    // The first start works; the next two fail; then it works again.
    args: () => {
      starts++;
      return ['-e', starts === 2 || starts === 3 ? 'process.exit(1)' : READY_CHILD, '0'];
    },
    log,
    restart: true,
    backoff: { initialMs: 20, maximumMs: 1000, resetAfterMs: 10_000 },
    detached: false,
  });
  t.after(() => supervised.stop('SIGKILL'));
  const first = await supervised.start();
  process.kill(first.pid, 'SIGKILL');
  await until(() => records.some((record) => record.message === 'process restarted'));
  assert.equal(starts, 4);
  assert.equal(records.filter((record) => record.message === 'restart failed').length, 2);
  assert.deepEqual(
    records
      .filter((record) => record.message === 'restarting process after back-off')
      .map((record) => record.details.delayMs),
    [20, 40, 80],
  );
});
