import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { NbdTestClient } from '../../helpers/nbd-client.ts';
import { controlClient, startHornbill } from '../../helpers/processes.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { VerifyingLoad } from './verifying-load.ts';

/**
 * `hornbill engine --local-replica`: the engine serves one replica folder on its own thread
 * and reaches it in memory, next to replicas in other processes reached over TCP.
 */

/** The verifying load works below this offset; the test's own writes go above it. */
const UPPER = 16 * 1024 * 1024;
const LAST_BLOCK = 32 * 1024 * 1024 - 4096;
const BIN = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'hornbill.mjs');

interface EngineStatus {
  robustness: string;
  replicas: { address: string; mode: string; local: boolean; inThread?: boolean }[];
}

async function startEngine(t: TestContext, localDirectory: string, remotePort: number, workers: string) {
  const engine = await startHornbill(t, [
    'engine',
    '--name',
    'vol1',
    '--size',
    '32Mi',
    '--local-replica',
    localDirectory,
    '--replica',
    `127.0.0.1:${remotePort}`,
    '--frontend',
    'nbd',
    '--listen',
    '127.0.0.1:0',
    '--control',
    '127.0.0.1:0',
    '--replica-timeout',
    '3s',
    '--workers',
    workers,
  ]);
  const control = await controlClient(t, engine.ready.control.port);
  const { client: nbd } = await NbdTestClient.attach(engine.ready.nbd.port, 'vol1');
  defer(t, () => nbd.destroy());
  return { engine, control, nbd };
}

for (const workers of ['0', '1']) {
  test(`an engine hosting its local replica (${workers} worker threads) writes both copies, survives losing the remote one, and leaves a replica folder anyone can serve`, async (t) => {
    const root = tempDirectory(t);
    const localDirectory = path.join(root, 'local');
    const remote = await startHornbill(t, [
      'replica',
      '--dir',
      path.join(root, 'remote'),
      '--size',
      '32Mi',
      '--listen',
      '127.0.0.1:0',
    ]);
    const { engine, control, nbd } = await startEngine(t, localDirectory, remote.ready.port, workers);
    const started = await control.control<EngineStatus>('status');
    assert.equal(started.robustness, 'healthy');
    assert.deepEqual(
      started.replicas.map((replica) => [replica.mode, replica.local, replica.inThread === true]),
      [
        ['RW', true, true],
        ['RW', false, false],
      ],
    );
    // 64 pipelined writes in the upper half, then read back through the engine.
    await Promise.all(
      Array.from({ length: 64 }, (_, index) => nbd.write(UPPER + index * 65_536, patternBytes(index, 8192))),
    );
    for (let index = 0; index < 64; index += 9) {
      assert.ok((await nbd.read(UPPER + index * 65_536, 8192)).equals(patternBytes(index, 8192)));
    }
    // A verifying load on the lower half runs through the loss of the remote replica and the rebuild.
    const load = new VerifyingLoad(nbd, UPPER);
    load.start();
    await load.runFor(200);
    await control.control('snapshot', { name: 'both' });
    const hashes = [];
    for (const replica of started.replicas) {
      const port = Number(replica.address.split(':')[1]);
      const client = await controlClient(t, port); // the hosted replica over TCP, like a rebuild would
      hashes.push((await client.control<{ hash: string }>('hashSnapshot', { name: 'both' })).hash);
      client.close();
    }
    assert.equal(hashes[0], hashes[1], 'the local and the remote copy hold the same snapshot');

    await remote.kill();
    await load.runFor(200);
    await nbd.write(LAST_BLOCK, patternBytes(500, 4096));
    const degraded = await control.control<EngineStatus>('status');
    assert.equal(degraded.robustness, 'degraded');
    assert.deepEqual(
      degraded.replicas.map((replica) => replica.mode),
      ['RW', 'ERR'],
    );
    // A replacement rebuilds from the hosted replica: its layers are read over the in-thread link.
    const replacement = await startHornbill(t, [
      'replica',
      '--dir',
      path.join(root, 'replacement'),
      '--size',
      '32Mi',
      '--listen',
      '127.0.0.1:0',
    ]);
    const rebuilt = await control.control<{ state: string; transferredBytes: number }>('addReplica', {
      host: '127.0.0.1',
      port: replacement.ready.port,
    });
    assert.equal(rebuilt.state, 'done');
    assert.ok(rebuilt.transferredBytes >= 64 * 8192, JSON.stringify(rebuilt));
    await control.control('removeReplica', { host: '127.0.0.1', port: remote.ready.port });
    await control.control('snapshot', { name: 'after-rebuild' });
    const rebuiltHashes = [];
    for (const port of [Number(started.replicas[0].address.split(':')[1]), replacement.ready.port]) {
      const client = await controlClient(t, port);
      rebuiltHashes.push(
        (await client.control<{ hash: string }>('hashSnapshot', { name: 'after-rebuild' })).hash,
      );
      client.close();
    }
    assert.equal(rebuiltHashes[0], rebuiltHashes[1], 'the rebuilt copy holds what the hosted one holds');
    assert.equal((await control.control<EngineStatus>('status')).robustness, 'healthy');
    await load.runFor(200);
    const stats = await load.stop();
    assert.deepEqual(stats.errors, []);
    assert.deepEqual(stats.mismatches, []);
    assert.ok(stats.writes > 200 && stats.reads > 200, JSON.stringify(stats));

    await nbd.command(3); // NBD_CMD_FLUSH
    await nbd.disconnect();
    control.close();
    await engine.stop();
    assert.equal((await engine.exited).code, 0, engine.stderr());

    // The hosted folder is an ordinary replica folder: `hornbill replica` serves it.
    const reopened = await startHornbill(t, [
      'replica',
      '--dir',
      localDirectory,
      '--size',
      '32Mi',
      '--listen',
      '127.0.0.1:0',
    ]);
    const client = await controlClient(t, reopened.ready.port);
    const data = Buffer.alloc(4096);
    await client.read(LAST_BLOCK, data);
    assert.ok(data.equals(patternBytes(500, 4096)));
    await reopened.stop();
  });
}

test('bad --local-replica flags are usage errors', () => {
  for (const [args, message] of [
    [['--local-replica', ''], /--local-replica needs a folder/],
    [
      ['--local-replica-listen', '127.0.0.1:0', '--replica', '127.0.0.1:9'],
      /--local-replica-listen needs --local-replica/,
    ],
    [['--local-replica', '/tmp/x', '--local-replica-listen', 'nowhere'], /--local-replica-listen/],
    [[], /at least one --replica \(or --local-replica\)/],
  ] as const) {
    const result = spawnSync(
      process.execPath,
      [BIN, 'engine', '--name', 'v', '--size', '1Mi', '--frontend', 'none', ...args],
      { encoding: 'utf8' },
    );
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /CLI_USAGE/);
    assert.match(result.stderr, message);
  }
});

test('a local replica folder of another size is refused with a coded error', async (t) => {
  const root = tempDirectory(t);
  const first = await startHornbill(t, [
    'engine',
    '--name',
    'v',
    '--size',
    '4Mi',
    '--local-replica',
    path.join(root, 'local'),
    '--frontend',
    'none',
  ]);
  await first.stop();
  const result = spawnSync(
    process.execPath,
    [
      BIN,
      'engine',
      '--name',
      'v',
      '--size',
      '8Mi',
      '--local-replica',
      path.join(root, 'local'),
      '--frontend',
      'none',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /INVALID_ARGUMENT|holds 4194304 bytes/);
});
