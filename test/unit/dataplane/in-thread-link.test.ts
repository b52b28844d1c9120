import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { encodeHeader, FRAME_HEADER_BYTES, Op } from '../../../src/dataplane/protocol/frame.ts';
import { connectInThread, InThreadSocket } from '../../../src/dataplane/protocol/in-thread-link.ts';
import { ReplicaClient } from '../../../src/dataplane/protocol/replica-client.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import { localAndRemoteEngine, serveReplica } from '../../helpers/in-thread.ts';
import { defer, patternBytes } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;

test('an in-thread link delivers what one run wrote as one chunk, on the next tick, in order', async () => {
  const [left, right] = InThreadSocket.pair();
  const chunks: Buffer[] = [];
  right.on('data', (chunk: Buffer) => {
    chunks.push(Buffer.from(chunk));
    // Written while a burst is delivered: goes out with the next burst, not into this one.
    if (chunks.length === 1) left.write(Buffer.from('late'));
  });
  left.write(Buffer.from('ab'));
  left.write(Buffer.from('cd'));
  assert.equal(left.writableLength, 4);
  assert.equal(chunks.length, 0, 'nothing is delivered inside the writing run');
  await nextTurn();
  assert.deepEqual(
    chunks.map((chunk) => chunk.toString()),
    ['abcd', 'late'],
  );
  assert.equal(left.writableLength, 0);
  // A burst larger than the staging buffer grows it and arrives whole.
  const big = patternBytes(7, 3 * MiB);
  left.write(big.subarray(0, MiB));
  left.write(big.subarray(MiB));
  await nextTurn();
  assert.ok(chunks[2].equals(big));
});

test('destroying either end closes both, once, and later writes are refused', async () => {
  const [left, right] = InThreadSocket.pair();
  let leftClosed = 0;
  let rightClosed = 0;
  let delivered = 0;
  left.on('close', () => leftClosed++);
  right.on('close', () => rightClosed++);
  right.on('data', () => delivered++);
  left.write(Buffer.from('dropped'));
  right.destroy();
  right.destroy();
  await nextTurn();
  assert.equal(leftClosed, 1);
  assert.equal(rightClosed, 1);
  assert.equal(delivered, 0, 'bytes staged before the close are not delivered');
  assert.equal(left.write(Buffer.from('x')), false);
  assert.ok(left.isDestroyed && right.isDestroyed);
});

test('only a server that offers it is reached in memory; others are reached over TCP', async (t) => {
  const local = await serveReplica(t, 'local', true);
  const remote = await serveReplica(t, 'remote', false);
  assert.ok(connectInThread(remote.address) === undefined);
  const clients = [];
  for (const { address } of [local, remote]) {
    const client = new ReplicaClient({ address, log: silentLogger });
    await client.connect();
    defer(t, () => client.close());
    clients.push(client);
  }
  assert.equal(clients[0].inThread, true);
  assert.equal(clients[1].inThread, false);
  const info = await clients[0].control<{ sizeBytes: number }>('info');
  assert.equal(info.sizeBytes, 16 * MiB);
});

test('an engine over an in-thread replica and a TCP replica keeps both identical; a closed local replica goes ERR', async (t) => {
  const { local, remote, engine } = await localAndRemoteEngine(t, 'vol');
  assert.deepEqual(
    engine.status().map((replica) => [replica.mode, replica.inThread === true]),
    [
      ['RW', true],
      ['RW', false],
    ],
  );
  // Pipelined writes of several sizes, some unaligned, then a flush: both copies agree.
  const writes = [];
  for (let index = 0; index < 96; index++) {
    const length = index % 3 === 0 ? 512 * (1 + (index % 7)) : 4096 * (1 + (index % 5));
    writes.push(engine.write(index * 40_960 + (index % 3 === 0 ? 1024 : 0), patternBytes(index, length)));
  }
  await Promise.all(writes);
  await engine.unmap(8 * MiB, MiB);
  await engine.flush();
  const viaEngine = Buffer.alloc(16 * MiB);
  await engine.read(0, viaEngine);
  const localData = Buffer.alloc(16 * MiB);
  const remoteData = Buffer.alloc(16 * MiB);
  local.store.read(0, localData);
  remote.store.read(0, remoteData);
  assert.ok(localData.equals(remoteData), 'the in-thread replica holds what the TCP replica holds');
  assert.ok(viaEngine.equals(localData));
  assert.equal(local.store.revisionCounter, remote.store.revisionCounter);

  await local.server.close();
  await nextTurn();
  await engine.write(0, patternBytes(99, 4096));
  assert.deepEqual(
    engine.status().map((replica) => replica.mode),
    ['ERR', 'RW'],
  );
  const check = Buffer.alloc(4096);
  await engine.read(0, check);
  assert.ok(check.equals(patternBytes(99, 4096)));
});

test('reads of an in-thread replica go straight to its store: a damaged block is repaired from the other replica, a closed store is a replica gone', async (t) => {
  const { local, engine } = await localAndRemoteEngine(t, 'direct');
  const data = patternBytes(21, MiB);
  await engine.write(0, data);
  await engine.flush();
  // Every read is served by the local store without a frame (over the link, the replica
  // server would read with readWithChecksums to fill the answer's checksum section).
  const calls = { read: 0, readWithChecksums: 0 };
  const store = local.store;
  const read = store.read.bind(store);
  const readWithChecksums = store.readWithChecksums.bind(store);
  store.read = (offsetBytes, target) => {
    calls.read++;
    read(offsetBytes, target);
  };
  store.readWithChecksums = (offsetBytes, target, checksums) => {
    calls.readWithChecksums++;
    readWithChecksums(offsetBytes, target, checksums);
  };
  const viaEngine = Buffer.alloc(MiB);
  for (let round = 0; round < 4; round++) await engine.read(0, viaEngine);
  assert.ok(viaEngine.equals(data));
  assert.ok(calls.read >= 4, 'each read went to the local store');
  assert.equal(calls.readWithChecksums, 0, 'no read crossed the link');
  // Damage block 3 of the local copy behind the store's back: the read answers good data
  // from the remote copy and repairs the local one.
  const layers = path.join(local.directory, 'layers');
  const head = path.join(layers, fs.readdirSync(layers).sort().at(-1)!);
  const fd = fs.openSync(head, 'r+');
  fs.writeSync(fd, Buffer.from([1, 2, 3]), 0, 3, 3 * 4096 + 11);
  fs.closeSync(fd);
  const repaired = Buffer.alloc(MiB);
  await engine.read(0, repaired);
  assert.ok(repaired.equals(data));
  // The repair runs behind the read's answer.
  const localCopy = Buffer.alloc(MiB);
  for (let wait = 0; ; wait++) {
    try {
      local.store.read(0, localCopy);
      break;
    } catch (error) {
      if (wait === 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  assert.ok(localCopy.equals(data), 'the local copy was repaired');
  // The store closed under a live link: the next read finds it gone, the volume reads on.
  local.store.close();
  const after = Buffer.alloc(MiB);
  await engine.read(0, after);
  assert.ok(after.equals(data));
  assert.deepEqual(
    engine.status().map((replica) => replica.mode),
    ['ERR', 'RW'],
  );
});

test('a malformed frame over an in-thread link closes that link and changes nothing', async (t) => {
  const local = await serveReplica(t, 'local', true);
  local.store.write(0, patternBytes(1, 4096));
  const before = local.store.revisionCounter;
  const link = connectInThread(local.address);
  assert.ok(link !== undefined);
  const socket = link.socket;
  let closed = false;
  socket.on('close', () => {
    closed = true;
  });
  assert.equal(local.server.connectionCount, 1);
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + 4096);
  encodeHeader(frame, 0, {
    op: Op.WRITE,
    sequence: 1,
    offsetBytes: 0,
    lengthBytes: 4096,
    payloadLength: 4096,
    flags: 0,
  });
  frame.writeUInt32LE(0xdeadbeef, 0); // bad magic
  socket.write(frame);
  await nextTurn();
  await nextTurn();
  assert.ok(closed);
  assert.equal(local.server.connectionCount, 0);
  assert.equal(local.store.revisionCounter, before);
  const data = Buffer.alloc(4096);
  local.store.read(0, data);
  assert.ok(data.equals(patternBytes(1, 4096)));
  // The server still accepts new links.
  const client = new ReplicaClient({ address: local.address, log: silentLogger });
  await client.connect();
  defer(t, () => client.close());
  await client.ping();
  await assert.rejects(client.control('noSuchMethod'), (error) => isHornbillError(error));
});
