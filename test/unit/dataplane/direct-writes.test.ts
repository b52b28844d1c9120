import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { FrameFlag } from '../../../src/dataplane/protocol/frame.ts';
import { connectInThread } from '../../../src/dataplane/protocol/in-thread-link.ts';
import { checksumSectionBytes, writeChecksumSection } from '../../../src/dataplane/protocol/payloads.ts';
import { ReplicaClient } from '../../../src/dataplane/protocol/replica-client.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import type { ReplicaStore, WriteRequest } from '../../../src/storage/replica-store.ts';
import { localAndRemoteEngine, serveReplica } from '../../helpers/in-thread.ts';
import { defer, patternBytes } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;

/** Records what reaches the store: each call's requests, and flushes. */
function watchStore(store: ReplicaStore) {
  const calls: { kind: 'write' | 'batch'; requests: WriteRequest[] }[] = [];
  let flushes = 0;
  const write = store.write.bind(store);
  const writeBatch = store.writeBatch.bind(store);
  const flush = store.flush.bind(store);
  store.write = (offsetBytes, data, options) => {
    calls.push({ kind: 'write', requests: [{ offsetBytes, data, ...options }] });
    write(offsetBytes, data, options);
  };
  store.writeBatch = (requests) => {
    calls.push({ kind: 'batch', requests: requests.map((request) => ({ ...request })) });
    writeBatch(requests);
  };
  store.flush = () => {
    flushes++;
    flush();
  };
  return { calls, flushes: () => flushes };
}

function section(offsetBytes: number, data: Uint8Array): Buffer {
  const checksums = Buffer.alloc(checksumSectionBytes(offsetBytes, data.length));
  writeChecksumSection(checksums, offsetBytes, data);
  return checksums;
}

async function connect(t: TestContext, address: { host: string; port: number }): Promise<ReplicaClient> {
  const client = new ReplicaClient({ address, log: silentLogger });
  await client.connect();
  defer(t, () => client.close());
  assert.equal(client.inThread, true);
  return client;
}

test("an engine's writes to its in-thread replica reach the store without frames, one batch per run, with the engine's checksums", async (t) => {
  const { local, remote, engine } = await localAndRemoteEngine(t, 'direct-writes');
  const watched = watchStore(local.store);
  // 32 writes of one run (4 KiB to 64 KiB, some zero blocks among them).
  const writes = [];
  const expected = Buffer.alloc(16 * MiB);
  for (let index = 0; index < 32; index++) {
    const data = index % 5 === 0 ? Buffer.alloc(4096 * 2) : patternBytes(index, 4096 * (1 + (index % 16)));
    const offset = index * 128 * 1024;
    data.copy(expected, offset);
    writes.push(engine.write(offset, data));
  }
  await Promise.all(writes);
  assert.equal(watched.calls.length, 1, 'the run of writes was applied as one batch');
  assert.equal(watched.calls[0].kind, 'batch');
  assert.equal(watched.calls[0].requests.length, 32);
  for (const request of watched.calls[0].requests) {
    assert.ok(request.computedChecksums !== undefined, 'the engine checksums were handed over');
    assert.equal(request.expected, undefined, 'nothing was sent to be checked again');
  }
  // What the store holds agrees with its index (the handed-over checksums were right), with the
  // copy over TCP, and with the revision counter of that copy.
  const report = local.store.verify();
  assert.equal(report.badBlockCount, 0);
  assert.ok(report.blocksChecked > 0);
  const localData = Buffer.alloc(16 * MiB);
  const remoteData = Buffer.alloc(16 * MiB);
  local.store.read(0, localData);
  remote.store.read(0, remoteData);
  assert.ok(localData.equals(expected));
  assert.ok(remoteData.equals(expected));
  assert.equal(local.store.revisionCounter, remote.store.revisionCounter);
  assert.deepEqual(
    local.store.layerExtents(local.store.listChain().at(-1)!.name, 0, 8),
    remote.store.layerExtents(remote.store.listChain().at(-1)!.name, 0, 8),
  );
  // A FUA write flushes the store once, after its batch, before it is acknowledged.
  const flushesBefore = watched.flushes();
  await Promise.all([
    engine.write(0, patternBytes(90, 4096), { fua: true }),
    engine.write(4096, patternBytes(91, 4096), { fua: true }),
  ]);
  assert.equal(watched.flushes() - flushesBefore, 1);
  // An unaligned write is not whole blocks: it goes through the link as a frame and is checked.
  await engine.write(512, patternBytes(92, 1024));
  const last = watched.calls.at(-1)!;
  assert.equal(last.requests[0].computedChecksums, undefined);
  assert.equal(typeof last.requests[0].expected, 'number');
});

test('direct writes and frames reach the replica in the order they were sent', async (t) => {
  const local = await serveReplica(t, 'local', true);
  const client = await connect(t, local.address);
  const first = patternBytes(1, 4096);
  const second = patternBytes(2, 4096);
  const watched = watchStore(local.store);
  await client.write(0, first, section(0, first), 0);
  assert.ok(watched.calls[0].requests[0].computedChecksums !== undefined, 'a lone write goes direct');
  // A snapshot frame, then a write in the same run: the write waits behind the frame (it is
  // sent as a frame too), so it lands after the snapshot, in the head.
  const [before] = await Promise.all([
    client.control<{ name: string }>('snapshot', { name: 'before' }),
    client.write(0, second, section(0, second), 0),
  ]);
  assert.ok(watched.calls.at(-1)!.requests[0].expected !== undefined, 'the write after a frame was framed');
  const snapshotData = Buffer.alloc(4096);
  local.store.readLayerBlocks(before.name, 0, snapshotData);
  assert.ok(snapshotData.equals(first), 'the snapshot holds what was written before it');
  // A direct write, then a snapshot frame in the same run: the write is in the snapshot.
  const third = patternBytes(3, 4096);
  const [, after] = await Promise.all([
    client.write(0, third, section(0, third), 0),
    client.control<{ name: string }>('snapshot', { name: 'after' }),
  ]);
  assert.ok(watched.calls.at(-1)!.requests[0].computedChecksums !== undefined);
  local.store.readLayerBlocks(after.name, 0, snapshotData);
  assert.ok(snapshotData.equals(third), 'the snapshot holds the direct write sent before it');
  const head = Buffer.alloc(4096);
  local.store.read(0, head);
  assert.ok(head.equals(third));
});

test('a refused direct write fails alone with its code; a closed store is the replica gone', async (t) => {
  const local = await serveReplica(t, 'local', true);
  const client = await connect(t, local.address);
  const good = patternBytes(4, 8192);
  const beyond = patternBytes(5, 4096);
  const revision = local.store.revisionCounter;
  const outcomes = await Promise.allSettled([
    client.write(0, good, section(0, good), 0),
    client.write(16 * MiB, beyond, section(16 * MiB, beyond), 0),
    client.write(3 * 4096, good, section(0, good), FrameFlag.FUA),
  ]);
  assert.equal(outcomes[0].status, 'fulfilled');
  assert.equal(outcomes[1].status, 'rejected');
  assert.ok(isHornbillError((outcomes[1] as PromiseRejectedResult).reason), 'a coded error');
  assert.equal(outcomes[2].status, 'fulfilled');
  assert.equal(local.store.revisionCounter, revision + 2, 'the refused write changed nothing');
  const held = Buffer.alloc(8192);
  local.store.read(3 * 4096, held);
  assert.ok(held.equals(good));
  // A checksum section that does not fit the data is refused before anything is queued.
  const direct = connectInThread(local.address)!.store!;
  const refused = await new Promise<unknown>((resolve) => direct.write(0, good, Buffer.alloc(4), 0, resolve));
  assert.ok(isHornbillError(refused, 'INVALID_ARGUMENT'));
  assert.equal(local.store.revisionCounter, revision + 2);
  // The store closed under a live link: the write fails as the replica being unreachable.
  local.store.close();
  await assert.rejects(client.write(0, good, section(0, good), 0), (error) =>
    isHornbillError(error, 'REPLICA_UNREACHABLE'),
  );
  assert.ok(client.failed);
  await nextTurn();
});
