/**
 * The ResourceStore contract: what every backend must do, checked by behaviour only (no
 * assumption about how resourceVersions look, and garbage collection may be asynchronous).
 * `resourceStoreContract(name, factory)` registers the suite; test/contract/*.test.ts run it
 * against the embedded store always and against Kubernetes when a cluster is configured.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ErrorCode, isHornbillError } from '../../src/errors.ts';
import { API_GROUP_VERSION, type OwnerReference, ownerReferenceTo } from '../../src/resources/api.ts';
import type { VolumeSpecInput } from '../../src/resources/kinds/volume.ts';
import type { CreateInput, Kind } from '../../src/resources/registry.ts';
import type { ResourceStore, ResourceWatch, WatchEvent } from '../../src/resources/store/types.ts';

export interface ContractHarness {
  store: ResourceStore;
  /** Two namespaces the test may use (they exist and are empty). */
  namespace: string;
  otherNamespace: string;
  /** A resourceVersion the store no longer serves watches from. */
  staleResourceVersion(): Promise<string>;
}

/** Opens a fresh store (or fresh namespaces) for one test and registers its clean-up on `t`. */
export type StoreFactory = (t: TestContext) => Promise<ContractHarness>;

const WAIT_MS = 20_000;

export async function expectCode(promise: Promise<unknown>, code: ErrorCode, field?: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isHornbillError(error), `expected a HornbillError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.details.field, field, error.message);
    return true;
  });
}

/** Polls `check` until it stops throwing (garbage collection is asynchronous on Kubernetes). */
export async function eventually(check: () => Promise<void>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/** The next `count` events of a watch, or a failure after a timeout. */
export async function take<T>(
  watch: ResourceWatch<T>,
  count: number,
  timeoutMs = WAIT_MS,
): Promise<WatchEvent<T>[]> {
  const events: WatchEvent<T>[] = [];
  const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
  while (events.length < count) {
    const next = await Promise.race([watch.next(), timer]);
    if (next === 'timeout')
      assert.fail(
        `watch gave ${events.length} of ${count} events: ${JSON.stringify(events.map((event) => event.type))}`,
      );
    if (next.done) assert.fail(`watch ended after ${events.length} of ${count} events`);
    events.push(next.value);
  }
  return events;
}

/** Nothing arrives on the watch within `milliseconds`. */
async function quiet<T>(watch: ResourceWatch<T>, milliseconds = 300): Promise<void> {
  const next = await Promise.race([watch.next(), sleep(milliseconds).then(() => 'quiet' as const)]);
  assert.equal(next, 'quiet', `unexpected event ${JSON.stringify(next)}`);
}

export function volumeInput(
  namespace: string,
  name: string,
  spec: Partial<VolumeSpecInput> = {},
  metadata: Partial<CreateInput<'Volume'>['metadata']> = {},
): CreateInput<'Volume'> {
  return { kind: 'Volume', metadata: { name, namespace, ...metadata }, spec: { size: '1Gi', ...spec } };
}

function engineInput(namespace: string, name: string, owners: OwnerReference[], finalizers?: string[]) {
  return {
    kind: 'Engine' as const,
    metadata: { name, namespace, ownerReferences: owners, finalizers },
    spec: { volumeName: 'vol', volumeSize: '1Gi' },
  };
}

function replicaInput(namespace: string, name: string, owners: OwnerReference[], finalizers?: string[]) {
  return {
    kind: 'Replica' as const,
    metadata: { name, namespace, ownerReferences: owners, finalizers },
    spec: { volumeName: 'vol', volumeSize: '1Gi' },
  };
}

async function absent(store: ResourceStore, kind: Kind, namespace: string, name: string): Promise<void> {
  await expectCode(store.get({ kind, namespace, name }), 'RESOURCE_NOT_FOUND');
}

export function resourceStoreContract(name: string, factory: StoreFactory): void {
  describe(`ResourceStore contract (${name})`, () => {
    test('create assigns identity, defaults the spec and drops status; get returns it', async (t) => {
      const { store, namespace } = await factory(t);
      const input = {
        ...volumeInput(namespace, 'vol1'),
        status: { state: 'attached' },
      } as CreateInput<'Volume'>;
      const created = await store.create(input);
      assert.equal(created.apiVersion, API_GROUP_VERSION);
      assert.ok(created.metadata.uid.length > 0);
      assert.ok(created.metadata.resourceVersion.length > 0);
      assert.equal(created.metadata.generation, 1);
      assert.match(created.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(created.spec.numberOfReplicas, 3);
      assert.equal(created.spec.accessMode, 'rwo');
      assert.equal(created.spec.dataLocality, 'disabled');
      assert.equal(created.status, undefined);
      assert.deepEqual(await store.get({ kind: 'Volume', namespace, name: 'vol1' }), created);
      await expectCode(store.create(volumeInput(namespace, 'vol1')), 'RESOURCE_ALREADY_EXISTS');
      await absent(store, 'Volume', namespace, 'vol2');
      const withVersion = volumeInput(namespace, 'vol3');
      (withVersion.metadata as unknown as Record<string, unknown>).resourceVersion = '5';
      await expectCode(store.create(withVersion), 'RESOURCE_INVALID', 'metadata.resourceVersion');
    });

    test('generateName gives a unique name with the prefix', async (t) => {
      const { store, namespace } = await factory(t);
      const input = {
        kind: 'Replica' as const,
        metadata: { generateName: 'vol-r-', namespace },
        spec: { volumeName: 'vol', volumeSize: '1Gi' },
      };
      const first = await store.create(input);
      const second = await store.create(input);
      assert.match(first.metadata.name, /^vol-r-[a-z0-9]{5}$/);
      assert.notEqual(first.metadata.name, second.metadata.name);
    });

    test('bad specs are refused with a coded error naming the field, and nothing is stored', async (t) => {
      const { store, namespace } = await factory(t);
      const cases: [CreateInput<Kind>, string][] = [
        [volumeInput(namespace, 'size-zero', { size: '0' }), 'spec.size'],
        [volumeInput(namespace, 'size-odd', { size: '1000' }), 'spec.size'],
        [volumeInput(namespace, 'size-text', { size: 'big' }), 'spec.size'],
        [volumeInput(namespace, 'mode', { accessMode: 'rwz' as never }), 'spec.accessMode'],
        [volumeInput(namespace, 'replicas-zero', { numberOfReplicas: 0 }), 'spec.numberOfReplicas'],
        [volumeInput(namespace, 'replicas-hundred', { numberOfReplicas: 100 }), 'spec.numberOfReplicas'],
        [volumeInput(namespace, 'locality', { dataLocality: 'sometimes' as never }), 'spec.dataLocality'],
        [
          volumeInput(namespace, 'strict', { dataLocality: 'strict-local', numberOfReplicas: 3 }),
          'spec.numberOfReplicas',
        ],
        [volumeInput(namespace, 'unknown', { sizeInBytes: 4096 } as never), 'spec.sizeInBytes'],
        [volumeInput(namespace, 'Vol_1'), 'metadata.name'],
        [volumeInput(namespace, 'v'.repeat(64)), 'metadata.name'],
        [volumeInput(namespace, 'labels', {}, { labels: { 'bad key!': 'x' } }), 'metadata.labels[bad key!]'],
        [
          { kind: 'Setting', metadata: { name: 'no-such-setting', namespace }, spec: { value: '1' } },
          'metadata.name',
        ],
        [
          { kind: 'Setting', metadata: { name: 'default-replica-count', namespace }, spec: { value: '0' } },
          'spec.value',
        ],
        [
          {
            kind: 'RecurringJob',
            metadata: { name: 'job', namespace },
            spec: { task: 'snapshot', cron: '61 * * * *' },
          },
          'spec.cron',
        ],
      ];
      for (const [input, field] of cases) {
        await expectCode(store.create(input), 'RESOURCE_INVALID', field);
      }
      assert.equal((await store.list('Volume', { namespace })).items.length, 0);
      assert.equal((await store.list('Setting', { namespace })).items.length, 0);
    });

    test('update: spec changes bump generation, metadata changes do not; stale versions conflict', async (t) => {
      const { store, namespace } = await factory(t);
      const created = await store.create(volumeInput(namespace, 'vol1'));
      const respec = await store.update({ ...created, spec: { ...created.spec, numberOfReplicas: 2 } });
      assert.equal(respec.metadata.generation, 2);
      assert.notEqual(respec.metadata.resourceVersion, created.metadata.resourceVersion);
      const relabel = await store.update({
        ...respec,
        metadata: { ...respec.metadata, labels: { tier: 'gold' } },
      });
      assert.equal(relabel.metadata.generation, 2);
      assert.deepEqual(relabel.metadata.labels, { tier: 'gold' });
      assert.notEqual(relabel.metadata.resourceVersion, respec.metadata.resourceVersion);
      await expectCode(
        store.update({ ...created, spec: { ...created.spec, numberOfReplicas: 4 } }),
        'RESOURCE_CONFLICT',
      );
      const unversioned = { ...relabel, metadata: { ...relabel.metadata, resourceVersion: '' } };
      await expectCode(store.update(unversioned), 'RESOURCE_INVALID', 'metadata.resourceVersion');
      const same = await store.update(relabel);
      assert.equal(
        same.metadata.resourceVersion,
        relabel.metadata.resourceVersion,
        'a no-op update writes nothing',
      );
      const withStatus = await store.update({ ...relabel, status: { state: 'attached' } });
      assert.equal(withStatus.status, undefined, 'update ignores status');
      await expectCode(
        store.update({ ...relabel, spec: { ...relabel.spec, size: '512Mi' } }),
        'RESOURCE_INVALID',
        'spec.size',
      );
      await expectCode(
        store.update({ ...relabel, spec: { ...relabel.spec, accessMode: 'x' as never } }),
        'RESOURCE_INVALID',
        'spec.accessMode',
      );
      const grown = await store.update({ ...relabel, spec: { ...relabel.spec, size: '2Gi' } });
      assert.equal(grown.spec.size, '2Gi');
      await expectCode(
        store.update({ ...grown, metadata: { ...grown.metadata, name: 'vol9' } }),
        'RESOURCE_NOT_FOUND',
      );
    });

    test('immutable fields stay', async (t) => {
      const { store, namespace } = await factory(t);
      const engine = await store.create(engineInput(namespace, 'vol-e-0', []));
      await expectCode(
        store.update({ ...engine, spec: { ...engine.spec, volumeName: 'other' } }),
        'RESOURCE_INVALID',
        'spec.volumeName',
      );
    });

    test('updateStatus changes only status, without a generation bump', async (t) => {
      const { store, namespace } = await factory(t);
      const created = await store.create(volumeInput(namespace, 'vol1'));
      const updated = await store.updateStatus({
        ...created,
        spec: { ...created.spec, numberOfReplicas: 1 },
        metadata: { ...created.metadata, labels: { ignored: 'yes' } },
        status: { state: 'detached', robustness: 'healthy', observedGeneration: 1 },
      });
      assert.deepEqual(updated.status, { state: 'detached', robustness: 'healthy', observedGeneration: 1 });
      assert.equal(updated.metadata.generation, 1);
      assert.equal(updated.spec.numberOfReplicas, 3, 'spec changes through status are ignored');
      assert.equal(updated.metadata.labels, undefined, 'metadata changes through status are ignored');
      assert.notEqual(updated.metadata.resourceVersion, created.metadata.resourceVersion);
      await expectCode(
        store.updateStatus({ ...created, status: { state: 'attached' } }),
        'RESOURCE_CONFLICT',
      );
      await expectCode(
        store.updateStatus({ ...updated, status: { state: 'exploded' as never } }),
        'RESOURCE_INVALID',
        'status.state',
      );
      const same = await store.updateStatus(updated);
      assert.equal(same.metadata.resourceVersion, updated.metadata.resourceVersion);
    });

    test('merge patch: spec, labels (null removes), status subresource, resourceVersion precondition', async (t) => {
      const { store, namespace } = await factory(t);
      const key = { kind: 'Volume' as const, namespace, name: 'vol1' };
      const created = await store.create(volumeInput(namespace, 'vol1', {}, { labels: { a: '1', b: '2' } }));
      const patched = await store.patch(key, {
        metadata: { labels: { a: null, c: '3' } },
        spec: { numberOfReplicas: 2 },
      });
      assert.deepEqual(patched.metadata.labels, { b: '2', c: '3' });
      assert.equal(patched.spec.numberOfReplicas, 2);
      assert.equal(patched.spec.size, '1Gi');
      assert.equal(patched.metadata.generation, 2);
      const ignored = await store.patch(key, { status: { state: 'attached' } });
      assert.equal(ignored.status, undefined);
      const status = await store.patch(
        key,
        { status: { state: 'attached', currentNodeID: 'node-1' } },
        { subresource: 'status' },
      );
      assert.equal(status.status?.currentNodeID, 'node-1');
      assert.equal(status.metadata.generation, 2);
      await expectCode(
        store.patch(key, {
          metadata: { resourceVersion: created.metadata.resourceVersion },
          spec: { numberOfReplicas: 1 },
        }),
        'RESOURCE_CONFLICT',
      );
      await expectCode(
        store.patch(key, { spec: { numberOfReplicas: 0 } }),
        'RESOURCE_INVALID',
        'spec.numberOfReplicas',
      );
      await expectCode(store.patch({ ...key, name: 'missing' }, { spec: {} }), 'RESOURCE_NOT_FOUND');
    });

    test('list by namespace and label selector (=, !=, in, notin, exists, !exists)', async (t) => {
      const { store, namespace, otherNamespace } = await factory(t);
      const labels: Record<string, Record<string, string>> = {
        'vol-a': { tier: 'gold', zone: 'a' },
        'vol-b': { tier: 'silver', zone: 'b' },
        'vol-c': { tier: 'gold' },
        'vol-d': {},
      };
      for (const [name, set] of Object.entries(labels)) {
        await store.create(volumeInput(namespace, name, {}, { labels: set }));
      }
      await store.create(volumeInput(otherNamespace, 'vol-z', {}, { labels: { tier: 'gold' } }));
      const names = async (selector?: string | object, scope: 'namespace' | 'all' = 'namespace') =>
        (
          await store.list('Volume', {
            namespace: scope === 'all' ? undefined : namespace,
            labelSelector: selector as string,
          })
        ).items
          .filter((item) => [namespace, otherNamespace].includes(item.metadata.namespace))
          .map((item) => `${item.metadata.namespace === namespace ? '' : 'other/'}${item.metadata.name}`);
      assert.deepEqual(await names(), ['vol-a', 'vol-b', 'vol-c', 'vol-d']);
      assert.deepEqual(await names('tier=gold'), ['vol-a', 'vol-c']);
      assert.deepEqual(await names('tier==gold'), ['vol-a', 'vol-c']);
      assert.deepEqual(await names('tier!=gold'), ['vol-b', 'vol-d']);
      assert.deepEqual(await names('zone in (a,b)'), ['vol-a', 'vol-b']);
      assert.deepEqual(await names('zone notin (a)'), ['vol-b', 'vol-c', 'vol-d']);
      assert.deepEqual(await names('zone'), ['vol-a', 'vol-b']);
      assert.deepEqual(await names('!zone'), ['vol-c', 'vol-d']);
      assert.deepEqual(await names('tier=gold,zone'), ['vol-a']);
      assert.deepEqual(
        await names({
          matchLabels: { tier: 'gold' },
          matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }],
        }),
        ['vol-c'],
      );
      assert.deepEqual((await names('tier=gold', 'all')).sort(), ['other/vol-z', 'vol-a', 'vol-c']);
      await expectCode(
        store.list('Volume', { namespace, labelSelector: 'tier in (gold' }),
        'INVALID_ARGUMENT',
      );
    });

    test('finalizers hold deletion: deletionTimestamp, generation bump, no new finalizers, removal on the last one', async (t) => {
      const { store, namespace } = await factory(t);
      const key = { kind: 'Volume' as const, namespace, name: 'vol1' };
      await store.create(
        volumeInput(namespace, 'vol1', {}, { finalizers: ['hornbill.io/volume', 'hornbill.io/other'] }),
      );
      const deleting = await store.delete(key);
      assert.equal(deleting.removed, false);
      assert.ok(deleting.object.metadata.deletionTimestamp !== undefined);
      assert.equal(deleting.object.metadata.generation, 2);
      const held = await store.get(key);
      assert.equal(held.metadata.deletionTimestamp, deleting.object.metadata.deletionTimestamp);
      const again = await store.delete(key);
      assert.equal(again.removed, false);
      assert.equal(
        again.object.metadata.resourceVersion,
        held.metadata.resourceVersion,
        'a second delete changes nothing',
      );
      await expectCode(
        store.update({
          ...held,
          metadata: {
            ...held.metadata,
            finalizers: [...(held.metadata.finalizers ?? []), 'hornbill.io/late'],
          },
        }),
        'RESOURCE_INVALID',
        'metadata.finalizers',
      );
      const one = await store.update({
        ...held,
        metadata: { ...held.metadata, finalizers: ['hornbill.io/other'] },
      });
      assert.deepEqual(one.metadata.finalizers, ['hornbill.io/other']);
      await store.get(key);
      await store.update({ ...one, metadata: { ...one.metadata, finalizers: [] } });
      await eventually(() => absent(store, 'Volume', namespace, 'vol1'));
    });

    test('delete preconditions, and a re-created object is a new incarnation', async (t) => {
      const { store, namespace } = await factory(t);
      const key = { kind: 'Volume' as const, namespace, name: 'vol1' };
      const first = await store.create(volumeInput(namespace, 'vol1'));
      await expectCode(store.delete(key, { preconditions: { uid: 'not-the-uid' } }), 'RESOURCE_CONFLICT');
      await expectCode(
        store.delete(key, { preconditions: { resourceVersion: `${first.metadata.resourceVersion}9` } }),
        'RESOURCE_CONFLICT',
      );
      const result = await store.delete(key, { preconditions: { uid: first.metadata.uid } });
      assert.equal(result.removed, true);
      await absent(store, 'Volume', namespace, 'vol1');
      await expectCode(store.delete(key), 'RESOURCE_NOT_FOUND');
      const second = await store.create(volumeInput(namespace, 'vol1'));
      assert.notEqual(second.metadata.uid, first.metadata.uid);
      await expectCode(
        store.update({ ...second, metadata: { ...second.metadata, uid: first.metadata.uid } }),
        'RESOURCE_CONFLICT',
      );
    });

    test('garbage collection: deleting an owner deletes its dependents, their dependents, and waits on finalizers', async (t) => {
      const { store, namespace } = await factory(t);
      const volume = await store.create(volumeInput(namespace, 'vol'));
      const other = await store.create(volumeInput(namespace, 'other'));
      const engine = await store.create(engineInput(namespace, 'vol-e-0', [ownerReferenceTo(volume)]));
      await store.create(replicaInput(namespace, 'vol-r-1', [ownerReferenceTo(engine)]));
      await store.create(
        replicaInput(namespace, 'vol-r-2', [ownerReferenceTo(volume)], ['hornbill.io/replica']),
      );
      const shared = await store.create(
        replicaInput(namespace, 'vol-r-3', [
          ownerReferenceTo(volume, { controller: false }),
          ownerReferenceTo(other),
        ]),
      );
      assert.equal(shared.metadata.ownerReferences?.length, 2);
      await store.delete({ kind: 'Volume', namespace, name: 'vol' });
      await absent(store, 'Volume', namespace, 'vol');
      await eventually(async () => {
        await absent(store, 'Engine', namespace, 'vol-e-0');
        await absent(store, 'Replica', namespace, 'vol-r-1');
        const held = await store.get({ kind: 'Replica', namespace, name: 'vol-r-2' });
        assert.ok(held.metadata.deletionTimestamp !== undefined, 'a dependent with a finalizer is marked');
        const kept = await store.get({ kind: 'Replica', namespace, name: 'vol-r-3' });
        assert.deepEqual(
          kept.metadata.ownerReferences?.map((reference) => reference.name),
          ['other'],
        );
        assert.equal(kept.metadata.deletionTimestamp, undefined, 'a dependent with a living owner stays');
      });
      const held = await store.get({ kind: 'Replica', namespace, name: 'vol-r-2' });
      await store.update({ ...held, metadata: { ...held.metadata, finalizers: [] } });
      await eventually(() => absent(store, 'Replica', namespace, 'vol-r-2'));
    });

    test('garbage collection: orphan keeps dependents without the reference', async (t) => {
      const { store, namespace } = await factory(t);
      const volume = await store.create(volumeInput(namespace, 'vol'));
      await store.create(engineInput(namespace, 'vol-e-0', [ownerReferenceTo(volume)]));
      const result = await store.delete(
        { kind: 'Volume', namespace, name: 'vol' },
        { propagationPolicy: 'Orphan' },
      );
      await eventually(async () => {
        await absent(store, 'Volume', namespace, 'vol');
        const engine = await store.get({ kind: 'Engine', namespace, name: 'vol-e-0' });
        assert.equal(engine.metadata.ownerReferences, undefined);
      });
      assert.equal(result.object.metadata.name, 'vol');
    });

    test('garbage collection: foreground keeps the owner until blocking dependents are gone', async (t) => {
      const { store, namespace } = await factory(t);
      const volume = await store.create(volumeInput(namespace, 'vol'));
      await store.create(
        engineInput(namespace, 'vol-e-0', [ownerReferenceTo(volume)], ['hornbill.io/engine']),
      );
      const result = await store.delete(
        { kind: 'Volume', namespace, name: 'vol' },
        { propagationPolicy: 'Foreground' },
      );
      assert.equal(result.removed, false);
      await eventually(async () => {
        const owner = await store.get({ kind: 'Volume', namespace, name: 'vol' });
        assert.ok(owner.metadata.deletionTimestamp !== undefined);
        assert.ok(owner.metadata.finalizers?.includes('foregroundDeletion'));
        const engine = await store.get({ kind: 'Engine', namespace, name: 'vol-e-0' });
        assert.ok(engine.metadata.deletionTimestamp !== undefined);
      });
      const engine = await store.get({ kind: 'Engine', namespace, name: 'vol-e-0' });
      await store.update({ ...engine, metadata: { ...engine.metadata, finalizers: [] } });
      await eventually(async () => {
        await absent(store, 'Engine', namespace, 'vol-e-0');
        await absent(store, 'Volume', namespace, 'vol');
      });
    });

    test('a dependent created for an owner that does not exist is collected', async (t) => {
      const { store, namespace } = await factory(t);
      const ghost: OwnerReference = {
        apiVersion: API_GROUP_VERSION,
        kind: 'Volume',
        name: 'ghost',
        uid: '00000000-0000-4000-8000-000000000000',
      };
      await store.create(engineInput(namespace, 'ghost-e-0', [ghost]));
      await eventually(() => absent(store, 'Engine', namespace, 'ghost-e-0'));
    });

    test('watch from a list: every change in order, each with its own resourceVersion', async (t) => {
      const { store, namespace, otherNamespace } = await factory(t);
      const listed = await store.list('Volume', { namespace });
      const watch = store.watch('Volume', { namespace, resourceVersion: listed.resourceVersion });
      t.after(() => watch.close());
      const created = await store.create(volumeInput(namespace, 'vol1'));
      await store.create(volumeInput(otherNamespace, 'elsewhere'));
      await store.create({
        kind: 'Engine',
        metadata: { name: 'vol1-e-0', namespace },
        spec: { volumeName: 'vol1', volumeSize: '1Gi' },
      });
      const updated = await store.update({ ...created, spec: { ...created.spec, numberOfReplicas: 2 } });
      const status = await store.updateStatus({ ...updated, status: { state: 'detached' } });
      await store.delete({ kind: 'Volume', namespace, name: 'vol1' });
      const events = await take(watch, 4);
      assert.deepEqual(
        events.map((event) => event.type),
        ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'],
      );
      assert.deepEqual(
        events.map((event) => event.object.metadata.name),
        ['vol1', 'vol1', 'vol1', 'vol1'],
      );
      assert.equal(events[0].object.metadata.resourceVersion, created.metadata.resourceVersion);
      assert.equal(events[1].object.spec.numberOfReplicas, 2);
      assert.equal(events[2].object.metadata.resourceVersion, status.metadata.resourceVersion);
      assert.equal(events[2].object.status?.state, 'detached');
      assert.equal(new Set(events.map((event) => event.object.metadata.resourceVersion)).size, 4);
      await quiet(watch);
    });

    test('watch with a selector: objects entering and leaving it are ADDED and DELETED', async (t) => {
      const { store, namespace } = await factory(t);
      const created = await store.create(volumeInput(namespace, 'vol1'));
      const watch = store.watch('Volume', {
        namespace,
        labelSelector: 'tier=gold',
        resourceVersion: created.metadata.resourceVersion,
      });
      t.after(() => watch.close());
      const gold = await store.update({
        ...created,
        metadata: { ...created.metadata, labels: { tier: 'gold' } },
      });
      const respec = await store.update({ ...gold, spec: { ...gold.spec, numberOfReplicas: 2 } });
      await store.update({ ...respec, metadata: { ...respec.metadata, labels: { tier: 'silver' } } });
      const events = await take(watch, 3);
      assert.deepEqual(
        events.map((event) => event.type),
        ['ADDED', 'MODIFIED', 'DELETED'],
      );
      await quiet(watch);
    });

    test('watch without a resourceVersion starts with the current objects', async (t) => {
      const { store, namespace } = await factory(t);
      await store.create(volumeInput(namespace, 'vol1'));
      await store.create(volumeInput(namespace, 'vol2'));
      const watch = store.watch('Volume', { namespace });
      t.after(() => watch.close());
      const initial = await take(watch, 2);
      assert.deepEqual(
        initial.map((event) => [event.type, event.object.metadata.name]),
        [
          ['ADDED', 'vol1'],
          ['ADDED', 'vol2'],
        ],
      );
      await store.delete({ kind: 'Volume', namespace, name: 'vol2' });
      const [deleted] = await take(watch, 1);
      assert.deepEqual([deleted.type, deleted.object.metadata.name], ['DELETED', 'vol2']);
    });

    test('watch from a compacted resourceVersion fails with RESOURCE_GONE', async (t) => {
      const harness = await factory(t);
      const stale = await harness.staleResourceVersion();
      const watch = harness.store.watch('Volume', { namespace: harness.namespace, resourceVersion: stale });
      await expectCode(watch.next(), 'RESOURCE_GONE');
    });

    test('a closed or aborted watch ends', async (t) => {
      const { store, namespace } = await factory(t);
      const { resourceVersion } = await store.list('Volume', { namespace });
      const watch = store.watch('Volume', { namespace, resourceVersion });
      const pending = watch.next();
      watch.close();
      assert.equal((await pending).done, true);
      const controller = new AbortController();
      const aborted = store.watch('Volume', { namespace, resourceVersion, signal: controller.signal });
      const waiting = aborted.next();
      controller.abort();
      assert.equal((await waiting).done, true);
    });

    test('events: recorded as core/v1 Events, repeats counted, listed by involved object', async (t) => {
      const { store, namespace } = await factory(t);
      const volume = await store.create(volumeInput(namespace, 'vol1'));
      const involvedObject = {
        apiVersion: API_GROUP_VERSION,
        kind: 'Volume',
        namespace,
        name: 'vol1',
        uid: volume.metadata.uid,
      };
      const input = {
        involvedObject,
        type: 'Normal' as const,
        reason: 'Attached',
        message: 'attached to node-1',
        component: 'hornbill-test',
      };
      const first = await store.recordEvent(input);
      assert.equal(first.kind, 'Event');
      assert.equal(first.apiVersion, 'v1');
      assert.equal(first.count, 1);
      const second = await store.recordEvent(input);
      assert.equal(second.count, 2);
      assert.equal(second.metadata.name, first.metadata.name);
      await store.recordEvent({
        ...input,
        type: 'Warning',
        reason: 'Degraded',
        message: 'replica vol1-r-1 failed',
      });
      await store.recordEvent({
        ...input,
        involvedObject: { ...involvedObject, name: 'vol2', uid: undefined },
        reason: 'Created',
      });
      await eventually(async () => {
        const events = await store.listEvents({
          namespace,
          involvedObject: { kind: 'Volume', name: 'vol1' },
        });
        assert.deepEqual(events.map((event) => [event.reason, event.count, event.type]).sort(), [
          ['Attached', 2, 'Normal'],
          ['Degraded', 1, 'Warning'],
        ]);
      });
      await expectCode(
        store.recordEvent({ ...input, reason: 'not camel case' }),
        'RESOURCE_INVALID',
        'reason',
      );
    });
  });
}
