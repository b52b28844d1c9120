/** What the embedded store adds to the contract: the counter, durability, the bounded change log, the file. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { open } from 'lmdb';
import { isHornbillError } from '../../../src/errors.ts';
import { type EmbeddedStoreOptions, openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import { STATE_FILE_NAME, StateDatabase } from '../../../src/resources/store/embedded-database.ts';
import { expectCode, take, volumeInput } from '../../contract/resource-store.contract.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

const namespace = 'hornbill-system';

async function openStore(
  t: import('node:test').TestContext,
  options: Partial<EmbeddedStoreOptions> & { directory: string },
) {
  const store = await openEmbeddedStore({ probe: false, ...options });
  defer(t, () => {
    void store.close();
  });
  return store;
}

test('resourceVersion is one counter across kinds; a list reports the current value', async (t) => {
  const store = await openStore(t, { directory: tempDirectory(t) });
  const volume = await store.create(volumeInput(namespace, 'vol1'));
  const engine = await store.create({
    kind: 'Engine',
    metadata: { name: 'vol1-e-0', namespace },
    spec: { volumeName: 'vol1', volumeSize: '1Gi' },
  });
  const updated = await store.updateStatus({ ...volume, status: { state: 'detached' } });
  assert.deepEqual(
    [volume, engine, updated].map((object) => object.metadata.resourceVersion),
    ['1', '2', '3'],
  );
  assert.equal((await store.list('Replica')).resourceVersion, '3');
  assert.equal(store.revision, 3);
});

test('every acknowledged write is there after a reopen, and the counter continues', async (t) => {
  const directory = tempDirectory(t);
  const first = await openEmbeddedStore({ directory, probe: false });
  const created = await first.create(
    volumeInput(namespace, 'vol1', {}, { finalizers: ['hornbill.io/volume'] }),
  );
  await first.delete({ kind: 'Volume', namespace, name: 'vol1' });
  await first.recordEvent({
    involvedObject: { kind: 'Volume', namespace, name: 'vol1' },
    type: 'Normal',
    reason: 'Created',
    message: 'm',
    component: 'test',
  });
  await first.close();
  const second = await openStore(t, { directory, probe: true });
  const stored = await second.get({ kind: 'Volume', namespace, name: 'vol1' });
  assert.equal(stored.metadata.uid, created.metadata.uid);
  assert.ok(stored.metadata.deletionTimestamp !== undefined);
  assert.equal((await second.listEvents()).length, 1);
  const next = await second.create(volumeInput(namespace, 'vol2'));
  assert.equal(next.metadata.resourceVersion, '3');
});

test('a watch resumes by resourceVersion across a restart', async (t) => {
  const directory = tempDirectory(t);
  const first = await openEmbeddedStore({ directory, probe: false });
  const a = await first.create(volumeInput(namespace, 'vol-a'));
  const resumeFrom = a.metadata.resourceVersion;
  await first.create(volumeInput(namespace, 'vol-b'));
  await first.update({ ...a, spec: { ...a.spec, numberOfReplicas: 1 } });
  await first.close();
  const second = await openStore(t, { directory });
  await second.delete({ kind: 'Volume', namespace, name: 'vol-b' });
  const watch = second.watch('Volume', { namespace, resourceVersion: resumeFrom });
  defer(t, () => watch.close());
  const events = await take(watch, 3);
  assert.deepEqual(
    events.map((event) => [event.type, event.object.metadata.name, event.object.metadata.resourceVersion]),
    [
      ['ADDED', 'vol-b', '2'],
      ['MODIFIED', 'vol-a', '3'],
      ['DELETED', 'vol-b', '4'],
    ],
  );
});

test('the change log keeps changeLogLimit entries; older versions are gone, newer ones replay', async (t) => {
  const store = await openStore(t, { directory: tempDirectory(t), changeLogLimit: 8 });
  let volume = await store.create(volumeInput(namespace, 'vol1'));
  for (let step = 0; step < 19; step++) {
    volume = await store.update({
      ...volume,
      metadata: { ...volume.metadata, labels: { step: String(step) } },
    });
  }
  assert.equal(store.revision, 20);
  assert.equal(store.compactedRevision, 12);
  const report = await store.verify();
  assert.deepEqual(report.problems, []);
  assert.equal(report.changes, 8);
  await expectCode(store.watch('Volume', { resourceVersion: '11' }).next(), 'RESOURCE_GONE');
  const watch = store.watch('Volume', { resourceVersion: '12' });
  defer(t, () => watch.close());
  const events = await take(watch, 8);
  assert.deepEqual(
    events.map((event) => Number(event.object.metadata.resourceVersion)),
    [13, 14, 15, 16, 17, 18, 19, 20],
  );
  await expectCode(store.watch('Volume', { resourceVersion: '21' }).next(), 'RESOURCE_GONE');
  await expectCode(store.watch('Volume', { resourceVersion: 'abc' }).next(), 'INVALID_ARGUMENT');
});

test('one writer: a second open of the folder is refused until the first closes', async (t) => {
  const directory = tempDirectory(t);
  const first = await openEmbeddedStore({ directory, probe: false });
  await expectCode(openEmbeddedStore({ directory, probe: false }), 'RESOURCE_STORE_LOCKED');
  await first.close();
  const second = await openStore(t, { directory });
  assert.equal(second.revision, 0);
});

test('writes issued together are ordered, and only one of two updates from the same version wins', async (t) => {
  const store = await openStore(t, { directory: tempDirectory(t) });
  const created = await Promise.all(
    Array.from({ length: 10 }, (_, index) => store.create(volumeInput(namespace, `vol${index}`))),
  );
  assert.deepEqual(
    created.map((object) => object.metadata.resourceVersion),
    Array.from({ length: 10 }, (_, index) => String(index + 1)),
  );
  const results = await Promise.allSettled([
    store.update({ ...created[0], spec: { ...created[0].spec, numberOfReplicas: 1 } }),
    store.update({ ...created[0], spec: { ...created[0].spec, numberOfReplicas: 2 } }),
  ]);
  assert.deepEqual(
    results.map((result) => result.status),
    ['fulfilled', 'rejected'],
  );
  assert.equal((await store.get({ kind: 'Volume', namespace, name: 'vol0' })).spec.numberOfReplicas, 1);
});

test('events are bounded: the least recently seen go first', async (t) => {
  const store = await openStore(t, { directory: tempDirectory(t), eventLimit: 3 });
  const record = (reason: string) =>
    store.recordEvent({
      involvedObject: { kind: 'Volume', namespace, name: 'vol1' },
      type: 'Normal',
      reason,
      message: reason,
      component: 'test',
    });
  for (const reason of ['One', 'Two', 'Three']) await record(reason);
  await record('One');
  await record('Four');
  const events = await store.listEvents();
  assert.deepEqual(
    events.map((event) => [event.reason, event.count]),
    [
      ['Three', 1],
      ['One', 2],
      ['Four', 1],
    ],
  );
  assert.deepEqual((await store.verify()).problems, []);
});

test('a closed store refuses calls and ends its watches with RESOURCE_STORE_CLOSED', async (t) => {
  const store = await openEmbeddedStore({ directory: tempDirectory(t), probe: false });
  const watch = store.watch('Volume', { resourceVersion: '0' });
  const pending = watch.next();
  await store.close();
  await expectCode(pending, 'RESOURCE_STORE_CLOSED');
  await expectCode(store.get({ kind: 'Volume', namespace, name: 'x' }), 'RESOURCE_STORE_CLOSED');
  await expectCode(store.create(volumeInput(namespace, 'x')), 'RESOURCE_STORE_CLOSED');
});

test('an empty or never-committed state file opens as a fresh store', async (t) => {
  const empty = tempDirectory(t);
  fs.writeFileSync(path.join(empty, STATE_FILE_NAME), '');
  const fromEmpty = await openStore(t, { directory: empty, probe: true });
  assert.equal(fromEmpty.revision, 0);
  const uninitialized = tempDirectory(t);
  await open({ path: path.join(uninitialized, STATE_FILE_NAME), overlappingSync: false }).close();
  const fromUninitialized = await openStore(t, { directory: uninitialized, probe: true });
  await fromUninitialized.create(volumeInput(namespace, 'vol1'));
  assert.equal(fromUninitialized.revision, 1);
});

async function storeWithData(t: import('node:test').TestContext): Promise<string> {
  const directory = tempDirectory(t);
  const store = await openEmbeddedStore({ directory, probe: false });
  for (let index = 0; index < 40; index++)
    await store.create(volumeInput(namespace, `vol${index}`, { size: '3Gi' }));
  await store.close();
  return path.join(directory, STATE_FILE_NAME);
}

test('a damaged state file is refused with RESOURCE_STORE_CORRUPT, never a crash', async (t) => {
  const garbage = tempDirectory(t);
  fs.writeFileSync(path.join(garbage, STATE_FILE_NAME), Buffer.alloc(10_000, 7));
  await expectCode(openEmbeddedStore({ directory: garbage }), 'RESOURCE_STORE_CORRUPT');

  // One changed byte inside each copy of a record (LMDB keeps old page copies): checksums fail.
  const flipped = await storeWithData(t);
  const bytes = fs.readFileSync(flipped);
  let copies = 0;
  for (let at = bytes.indexOf('"name":"vol7"'); at >= 0; at = bytes.indexOf('"name":"vol7"', at + 1)) {
    bytes[at + 11] = '8'.charCodeAt(0);
    copies++;
  }
  assert.ok(copies > 0);
  fs.writeFileSync(flipped, bytes);
  await expectCode(openEmbeddedStore({ directory: path.dirname(flipped) }), 'RESOURCE_STORE_CORRUPT');

  // Scribbled pages past the meta pages: LMDB may crash the probe, which is reported.
  const scribbled = await storeWithData(t);
  const pages = fs.readFileSync(scribbled);
  pages.fill(0xa5, 2 * 4096, pages.length);
  fs.writeFileSync(scribbled, pages);
  await expectCode(openEmbeddedStore({ directory: path.dirname(scribbled) }), 'RESOURCE_STORE_CORRUPT');
});

test('a write is acknowledged, and seen by readers, only after its commit is flushed', async (t) => {
  const store = await openStore(t, { directory: tempDirectory(t) });
  const original = StateDatabase.prototype.flushed;
  const releases: (() => void)[] = [];
  StateDatabase.prototype.flushed = async function (this: StateDatabase) {
    await new Promise<void>((resolve) => releases.push(resolve));
    return original.call(this);
  };
  defer(t, () => {
    StateDatabase.prototype.flushed = original;
  });
  let acknowledged = false;
  const creating = store.create(volumeInput(namespace, 'vol1')).then(() => {
    acknowledged = true;
  });
  let listed: number | undefined;
  const listing = store.list('Volume').then((list) => {
    listed = list.items.length;
  });
  await sleep(50);
  assert.equal(acknowledged, false);
  assert.equal(listed, undefined, 'a reader does not see an unflushed write');
  assert.ok(releases.length > 0);
  StateDatabase.prototype.flushed = original;
  for (const release of releases) release();
  await Promise.all([creating, listing]);
  assert.equal(acknowledged, true);
  assert.equal(listed, 1);
});

test('a flush that fails stops the store with RESOURCE_STORE_FAILED', async (t) => {
  const store = await openStore(t, { directory: tempDirectory(t) });
  const original = StateDatabase.prototype.flushed;
  StateDatabase.prototype.flushed = async () => {
    throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  };
  defer(t, () => {
    StateDatabase.prototype.flushed = original;
  });
  await expectCode(store.create(volumeInput(namespace, 'vol1')), 'RESOURCE_STORE_FAILED');
  StateDatabase.prototype.flushed = original;
  await expectCode(store.get({ kind: 'Volume', namespace, name: 'vol1' }), 'RESOURCE_STORE_FAILED');
});

test('a state file that crashes LMDB (a zeroed page) is refused by the probe; this process lives', async (t) => {
  const source = await storeWithData(t);
  const original = fs.readFileSync(source);
  let crashed = 0;
  // Zeroing one of the first pages after the meta pages makes LMDB abort on some of them.
  for (let page = 2; page < 10 && crashed === 0; page++) {
    const directory = tempDirectory(t);
    const bytes = Buffer.from(original);
    bytes.fill(0, page * 4096, (page + 1) * 4096);
    fs.writeFileSync(path.join(directory, STATE_FILE_NAME), bytes);
    try {
      const store = await openEmbeddedStore({ directory });
      await store.close();
    } catch (error) {
      assert.ok(isHornbillError(error, 'RESOURCE_STORE_CORRUPT'), String(error));
      if (error.message.includes('LMDB crashed')) crashed++;
    }
  }
  assert.ok(crashed > 0, 'no zeroed page crashed the probe');
});
