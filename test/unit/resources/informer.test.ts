import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HornbillError } from '../../../src/errors.ts';
import { Informer } from '../../../src/resources/informer.ts';
import type { Kind } from '../../../src/resources/registry.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import type { ResourceStore, ResourceWatch, WatchOptions } from '../../../src/resources/store/types.ts';
import { eventually, volumeInput } from '../../contract/resource-store.contract.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

const namespace = 'hornbill-system';

async function setUp(t: import('node:test').TestContext) {
  const store = await openEmbeddedStore({ directory: tempDirectory(t), probe: false });
  defer(t, () => {
    void store.close();
  });
  return store;
}

function recorder() {
  const seen: string[] = [];
  return {
    seen,
    handler: {
      added: (object: { metadata: { name: string } }) => seen.push(`added ${object.metadata.name}`),
      modified: (object: { metadata: { name: string } }) => seen.push(`modified ${object.metadata.name}`),
      deleted: (object: { metadata: { name: string } }) => seen.push(`deleted ${object.metadata.name}`),
    },
  };
}

test('an informer lists, then follows every change; a late handler hears the cache', async (t) => {
  const store = await setUp(t);
  await store.create(volumeInput(namespace, 'vol1'));
  const informer = new Informer(store, 'Volume', { namespace });
  const early = recorder();
  informer.addHandler(early.handler);
  await informer.start();
  defer(t, () => {
    void informer.stop();
  });
  assert.equal(informer.hasSynced, true);
  assert.equal(informer.get(namespace, 'vol1')?.metadata.name, 'vol1');
  const created = await store.create(volumeInput(namespace, 'vol2'));
  await store.update({ ...created, spec: { ...created.spec, numberOfReplicas: 1 } });
  await store.delete({ kind: 'Volume', namespace, name: 'vol1' });
  await eventually(
    async () => assert.deepEqual(early.seen, ['added vol1', 'added vol2', 'modified vol2', 'deleted vol1']),
    5000,
  );
  assert.deepEqual(
    informer.list().map((volume) => [volume.metadata.name, volume.spec.numberOfReplicas]),
    [['vol2', 1]],
  );
  const late = recorder();
  informer.addHandler(late.handler);
  assert.deepEqual(late.seen, ['added vol2']);
  await informer.stop();
});

/** A store whose first watch fails with RESOURCE_GONE after `beforeGone` ran behind the informer's back. */
class GoneOnce {
  private failed = false;
  private readonly inner: ResourceStore;
  private readonly beforeGone: () => Promise<void>;
  constructor(inner: ResourceStore, beforeGone: () => Promise<void>) {
    this.inner = inner;
    this.beforeGone = beforeGone;
  }
  store(): ResourceStore {
    return new Proxy(this.inner, {
      get: (target, property, receiver) => {
        if (property !== 'watch') return Reflect.get(target, property, receiver);
        return (kind: Kind, options: WatchOptions) => {
          if (this.failed) return target.watch(kind, options);
          this.failed = true;
          const gone: ResourceWatch<never> = {
            next: async () => {
              await this.beforeGone();
              throw new HornbillError('RESOURCE_GONE', 'too old');
            },
            return: async () => ({ value: undefined, done: true }),
            close: () => {},
            [Symbol.asyncIterator]() {
              return this;
            },
          };
          return gone;
        };
      },
    });
  }
}

test('on RESOURCE_GONE the informer lists again and reports what it missed, deletions included', async (t) => {
  const store = await setUp(t);
  await store.create(volumeInput(namespace, 'vol1'));
  await store.create(volumeInput(namespace, 'vol2'));
  const wrapper = new GoneOnce(store, async () => {
    await store.delete({ kind: 'Volume', namespace, name: 'vol1' });
    await store.create(volumeInput(namespace, 'vol3'));
  });
  const informer = new Informer(wrapper.store(), 'Volume', { namespace });
  const events = recorder();
  informer.addHandler(events.handler);
  await informer.start();
  defer(t, () => {
    void informer.stop();
  });
  await eventually(
    async () => assert.deepEqual(events.seen, ['added vol1', 'added vol2', 'added vol3', 'deleted vol1']),
    5000,
  );
  assert.equal(informer.listCount, 2);
  await store.create(volumeInput(namespace, 'vol4'));
  await eventually(async () => assert.ok(informer.get(namespace, 'vol4') !== undefined), 5000);
  await informer.stop();
  await sleep(10);
});
