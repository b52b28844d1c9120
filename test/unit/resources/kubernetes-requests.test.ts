/**
 * The requests the Kubernetes backend builds: paths, content types, selectors, bodies, and
 * how API objects are reduced to the embedded store's shape. The last part sends requests
 * through client-node with a recording transport (canned answers, no API semantics) to check
 * what actually goes on the wire.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  type HttpLibrary,
  KubeConfig,
  Observable,
  type RequestContext,
  ResponseContext,
} from '@kubernetes/client-node';
import { isHornbillError } from '../../../src/errors.ts';
import type { Volume } from '../../../src/resources/kinds/volume.ts';
import {
  KubernetesResourceStore,
  loadKubeConfig,
  openKubernetesStore,
} from '../../../src/resources/store/kubernetes.ts';
import {
  collectionPath,
  createBody,
  deleteOptionsBody,
  escapeFieldValue,
  eventFieldSelector,
  eventName,
  labelSelectorQuery,
  mergePatchBetween,
  newEventBody,
  normalizeEvent,
  normalizeObject,
  objectPath,
  repeatEventPatch,
  sortObjects,
  watchQuery,
} from '../../../src/resources/store/kubernetes-requests.ts';
import type { EventInput } from '../../../src/resources/store/types.ts';
import { admitCreate } from '../../../src/resources/validation.ts';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

describe('paths and queries', () => {
  test('collection and object paths of a kind', () => {
    assert.equal(
      collectionPath('Volume', 'hornbill-system'),
      '/apis/hornbill.io/v1beta1/namespaces/hornbill-system/volumes',
    );
    assert.equal(collectionPath('InstanceManager'), '/apis/hornbill.io/v1beta1/instancemanagers');
    assert.equal(
      objectPath('Replica', 'ns', 'vol-r-1', 'status'),
      '/apis/hornbill.io/v1beta1/namespaces/ns/replicas/vol-r-1/status',
    );
    assert.equal(objectPath('Volume', 'ns', 'a/b'), '/apis/hornbill.io/v1beta1/namespaces/ns/volumes/a%2Fb');
  });

  test('label selectors in either form become the API text; malformed ones are INVALID_ARGUMENT', () => {
    assert.equal(labelSelectorQuery(undefined), undefined);
    assert.equal(labelSelectorQuery(''), undefined);
    assert.equal(labelSelectorQuery('tier==gold'), 'tier=gold');
    assert.equal(
      labelSelectorQuery('tier!=gold,zone in (a,b),!canary,release'),
      'tier!=gold,zone in (a,b),!canary,release',
    );
    assert.equal(
      labelSelectorQuery({
        matchLabels: { tier: 'gold' },
        matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }],
      }),
      'tier=gold,!zone',
    );
    assert.equal(
      labelSelectorQuery({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }),
      'zone!=a',
    );
    assert.throws(
      () => labelSelectorQuery('tier in (gold'),
      (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
    );
  });

  test('event field selectors escape their values', () => {
    assert.equal(eventFieldSelector({}), undefined);
    assert.equal(
      eventFieldSelector({ involvedObject: { kind: 'Volume', name: 'vol1', uid: 'u-1' } }),
      'involvedObject.kind=Volume,involvedObject.name=vol1,involvedObject.uid=u-1',
    );
    assert.equal(escapeFieldValue('a,b=c\\d'), 'a\\,b\\=c\\\\d');
  });

  test('a watch asks for bookmarks and a server-side timeout', () => {
    assert.deepEqual(watchQuery({ resourceVersion: '42', timeoutSeconds: 25 }), {
      allowWatchBookmarks: true,
      resourceVersion: '42',
      timeoutSeconds: 25,
    });
    assert.equal(
      watchQuery({ resourceVersion: '1', labelSelector: 'a=b', timeoutSeconds: 5 }).labelSelector,
      'a=b',
    );
  });
});

describe('bodies', () => {
  test('delete options: policy, and the caller preconditions win over the uid read before', () => {
    assert.deepEqual(deleteOptionsBody({}), { apiVersion: 'v1', kind: 'DeleteOptions' });
    assert.deepEqual(deleteOptionsBody({ propagationPolicy: 'Foreground' }, 'uid-read'), {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: 'Foreground',
      preconditions: { uid: 'uid-read' },
    });
    assert.deepEqual(
      deleteOptionsBody({ preconditions: { uid: 'mine', resourceVersion: '7' } }, 'uid-read').preconditions,
      {
        uid: 'mine',
        resourceVersion: '7',
      },
    );
  });

  test('create keeps name or generateName and drops empty collections', () => {
    const body = createBody(
      'Volume',
      { namespace: 'ns', generateName: 'vol-', labels: {}, finalizers: ['hornbill.io/volume'] },
      { size: '1Gi' },
    );
    assert.deepEqual(body, {
      apiVersion: 'hornbill.io/v1beta1',
      kind: 'Volume',
      metadata: { namespace: 'ns', generateName: 'vol-', finalizers: ['hornbill.io/volume'] },
      spec: { size: '1Gi' },
    });
  });

  test('the merge patch between two objects: of metadata and spec, or of status only', () => {
    const stored = {
      metadata: { name: 'v', labels: { a: '1', b: '2' }, resourceVersion: '5' },
      spec: { size: '1Gi', numberOfReplicas: 3 },
      status: { state: 'detached', robustness: 'healthy' },
    };
    const next = {
      metadata: { name: 'v', labels: { a: '1' }, resourceVersion: '5' },
      spec: { size: '2Gi', numberOfReplicas: 3 },
      status: { state: 'attached' },
    };
    assert.deepEqual(mergePatchBetween(stored, next), {
      metadata: { labels: { b: null } },
      spec: { size: '2Gi' },
    });
    assert.deepEqual(mergePatchBetween(stored, next, 'status'), {
      status: { state: 'attached', robustness: null },
    });
    assert.deepEqual(mergePatchBetween(stored, { ...stored, status: undefined }, 'status'), { status: null });
    assert.deepEqual(mergePatchBetween(stored, stored), {});
  });
});

describe('objects from the API server', () => {
  test('are reduced to the embedded shape', () => {
    const raw = {
      apiVersion: 'hornbill.io/v1beta1',
      kind: 'Volume',
      metadata: {
        name: 'vol1',
        generateName: 'vol',
        namespace: 'ns',
        uid: 'u1',
        resourceVersion: '12',
        generation: 2,
        creationTimestamp: '2026-01-02T03:04:05Z',
        deletionTimestamp: '2026-01-02T03:05:00Z',
        deletionGracePeriodSeconds: 0,
        labels: {},
        finalizers: ['hornbill.io/volume'],
        ownerReferences: [],
        managedFields: [{ manager: 'hornbill' }],
        selfLink: '/x',
      },
      spec: { size: '1Gi' },
    };
    assert.deepEqual(normalizeObject(raw), {
      apiVersion: 'hornbill.io/v1beta1',
      kind: 'Volume',
      metadata: {
        name: 'vol1',
        namespace: 'ns',
        uid: 'u1',
        resourceVersion: '12',
        generation: 2,
        creationTimestamp: '2026-01-02T03:04:05Z',
        finalizers: ['hornbill.io/volume'],
        deletionTimestamp: '2026-01-02T03:05:00Z',
      },
      spec: { size: '1Gi' },
    });
  });

  test('sort by namespace, then name', () => {
    const item = (namespace: string, name: string) => ({ metadata: { namespace, name } });
    assert.deepEqual(
      sortObjects([item('b', 'a'), item('a', 'z'), item('a', 'b')]).map(
        (i) => `${i.metadata.namespace}/${i.metadata.name}`,
      ),
      ['a/b', 'a/z', 'b/a'],
    );
  });
});

describe('events', () => {
  const input: EventInput = {
    involvedObject: {
      apiVersion: 'hornbill.io/v1beta1',
      kind: 'Volume',
      namespace: 'ns',
      name: 'vol1',
      uid: 'u1',
    },
    type: 'Warning',
    reason: 'Degraded',
    message: 'replica vol1-r-1 failed',
    component: 'hornbill-volume-controller',
    host: 'node-1',
  };

  test('one name per correlation key: repeats land on one Event', () => {
    assert.equal(eventName(input), eventName({ ...input }));
    assert.notEqual(eventName(input), eventName({ ...input, message: 'other' }));
    assert.match(eventName(input), /^vol1\.[0-9a-f]{16}$/);
    const long = eventName({
      ...input,
      involvedObject: { ...input.involvedObject, name: `${'a'.repeat(250)}-x` },
    });
    assert.ok(long.length <= 253);
    assert.match(long, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });

  test('the first occurrence and a repeat', () => {
    const body = newEventBody(input, NOW);
    assert.equal(body.count, 1);
    assert.equal(body.firstTimestamp, '2026-01-02T03:04:05Z');
    assert.deepEqual(body.source, { component: 'hornbill-volume-controller', host: 'node-1' });
    assert.deepEqual(body.metadata, { name: eventName(input), namespace: 'ns' });
    assert.deepEqual(repeatEventPatch(3, '99', NOW + 60_000), {
      metadata: { resourceVersion: '99' },
      count: 4,
      lastTimestamp: '2026-01-02T03:05:05Z',
    });
    const long = newEventBody({ ...input, message: 'm'.repeat(5000) }, NOW);
    assert.equal((long.message as string).length, 1024);
  });

  test('Events from the API (with Dates, or events.k8s.io fields) are normalized', () => {
    const legacy = normalizeEvent({
      metadata: {
        name: 'e',
        namespace: 'ns',
        uid: 'x',
        resourceVersion: '3',
        creationTimestamp: new Date(NOW),
      },
      involvedObject: { kind: 'Volume', name: 'vol1', namespace: 'ns' },
      type: 'Normal',
      reason: 'Attached',
      message: 'attached',
      source: { component: 'c' },
      count: 2,
      firstTimestamp: new Date(NOW),
      lastTimestamp: new Date(NOW + 1000),
    });
    assert.equal(legacy.count, 2);
    assert.equal(legacy.firstTimestamp, '2026-01-02T03:04:05Z');
    assert.equal(legacy.lastTimestamp, '2026-01-02T03:04:06Z');
    assert.equal(legacy.metadata.creationTimestamp, '2026-01-02T03:04:05Z');
    const modern = normalizeEvent({
      metadata: { name: 'e2', namespace: 'ns' },
      involvedObject: { kind: 'Volume', name: 'vol1', namespace: 'ns' },
      reason: 'Attached',
      reportingComponent: 'kubelet',
      eventTime: '2026-01-02T03:04:05.123456Z',
      series: { count: 5, lastObservedTime: '2026-01-02T03:10:00.000000Z' },
    });
    assert.equal(modern.count, 5);
    assert.equal(modern.firstTimestamp, '2026-01-02T03:04:05Z');
    assert.equal(modern.lastTimestamp, '2026-01-02T03:10:00Z');
    assert.equal(modern.source.component, 'kubelet');
  });
});

// --- On the wire, through client-node --------------------------------------------------------

interface Sent {
  method: string;
  url: URL;
  contentType: string | undefined;
  body: unknown;
}

/** A transport that records each request and answers from `answer` (status, JSON body). */
function recorder(answer: (sent: Sent) => [number, unknown]): { httpApi: HttpLibrary; sent: Sent[] } {
  const sent: Sent[] = [];
  const httpApi: HttpLibrary = {
    send(request: RequestContext) {
      const headers = request.getHeaders();
      const rawBody = request.getBody();
      const entry: Sent = {
        method: request.getHttpMethod(),
        url: new URL(request.getUrl()),
        contentType: headers['Content-Type'] ?? headers['content-type'],
        body: typeof rawBody === 'string' && rawBody !== '' ? JSON.parse(rawBody) : undefined,
      };
      sent.push(entry);
      const [status, body] = answer(entry);
      const text = JSON.stringify(body);
      const response = new ResponseContext(
        status,
        { 'content-type': 'application/json' },
        { text: async () => text, binary: async () => Buffer.from(text), stream: () => null },
      );
      return new Observable(Promise.resolve(response));
    },
  };
  return { httpApi, sent };
}

function kubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'test', server: 'https://api.test:6443' }],
    users: [{ name: 'test', token: 'token' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: 'hornbill-system' }],
    currentContext: 'test',
  });
  return config;
}

const stored = {
  apiVersion: 'hornbill.io/v1beta1',
  kind: 'Volume',
  metadata: {
    name: 'vol1',
    namespace: 'ns',
    uid: 'uid-1',
    resourceVersion: '5',
    generation: 1,
    creationTimestamp: '2026-01-02T03:04:05Z',
  },
  // As the API server stores it: with the schema defaults.
  spec: admitCreate({ kind: 'Volume', metadata: { name: 'vol1', namespace: 'ns' }, spec: { size: '1Gi' } })
    .spec,
};

describe('requests on the wire', () => {
  const key = { kind: 'Volume' as const, namespace: 'ns', name: 'vol1' };

  test('the namespace comes from the context; the store is the kubernetes backend', () => {
    const store = new KubernetesResourceStore(kubeConfig());
    assert.equal(store.namespace, 'hornbill-system');
    assert.equal(store.backend, 'kubernetes');
  });

  test('list: label selector, page size, continue tokens; items sorted', async () => {
    let page = 0;
    const { httpApi, sent } = recorder(() => {
      page++;
      const item = (name: string) => ({ ...stored, metadata: { ...stored.metadata, name } });
      return page === 1
        ? [200, { items: [item('b')], metadata: { resourceVersion: '9', continue: 'next-page' } }]
        : [200, { items: [item('a')], metadata: { resourceVersion: '9' } }];
    });
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    const listed = await store.list('Volume', { namespace: 'ns', labelSelector: 'tier==gold,zone in (a,b)' });
    assert.deepEqual(
      listed.items.map((item) => item.metadata.name),
      ['a', 'b'],
    );
    assert.equal(listed.resourceVersion, '9');
    assert.equal(sent[0].method, 'GET');
    assert.equal(sent[0].url.pathname, '/apis/hornbill.io/v1beta1/namespaces/ns/volumes');
    assert.equal(sent[0].url.searchParams.get('labelSelector'), 'tier=gold,zone in (a,b)');
    assert.equal(sent[0].url.searchParams.get('limit'), '500');
    assert.equal(sent[1].url.searchParams.get('continue'), 'next-page');
    await store.list('Volume');
    assert.equal(sent[2].url.pathname, '/apis/hornbill.io/v1beta1/volumes');
  });

  test('create: POST of the admitted object; a bad spec never leaves the process', async () => {
    const { httpApi, sent } = recorder((request) => [
      201,
      { ...(request.body as object), metadata: stored.metadata },
    ]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await store.create({
      kind: 'Volume',
      metadata: { name: 'vol1', namespace: 'ns' },
      spec: { size: '1Gi' },
    });
    assert.equal(sent[0].method, 'POST');
    assert.equal(sent[0].url.pathname, '/apis/hornbill.io/v1beta1/namespaces/ns/volumes');
    assert.equal(sent[0].url.searchParams.get('fieldManager'), 'hornbill');
    const body = sent[0].body as { spec: { numberOfReplicas: number }; metadata: object };
    assert.equal(body.spec.numberOfReplicas, 3, 'defaults applied before the write');
    assert.deepEqual(body.metadata, { namespace: 'ns', name: 'vol1' });
    await assert.rejects(
      store.create({ kind: 'Volume', metadata: { name: 'vol2', namespace: 'ns' }, spec: { size: '0' } }),
      (error) => isHornbillError(error, 'RESOURCE_INVALID') && error.details.field === 'spec.size',
    );
    assert.equal(sent.length, 1);
  });

  test('update: read, then PUT with the resourceVersion; a stale version conflicts without a write', async () => {
    const { httpApi, sent } = recorder((request) =>
      request.method === 'GET'
        ? [200, stored]
        : [200, { ...(request.body as object), metadata: { ...stored.metadata, resourceVersion: '6' } }],
    );
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    const volume = normalizeObject<Volume>(stored);
    const updated = await store.update({ ...volume, spec: { ...volume.spec, numberOfReplicas: 2 } });
    assert.equal(updated.metadata.resourceVersion, '6');
    assert.deepEqual(
      sent.map((request) => request.method),
      ['GET', 'PUT'],
    );
    const put = sent[1].body as { metadata: { resourceVersion: string; uid: string }; status?: unknown };
    assert.equal(put.metadata.resourceVersion, '5');
    assert.equal(put.metadata.uid, 'uid-1');
    assert.equal(put.status, undefined);
    await assert.rejects(
      store.update({ ...volume, metadata: { ...volume.metadata, resourceVersion: '4' } }),
      (error) => isHornbillError(error, 'RESOURCE_CONFLICT'),
    );
    await assert.rejects(
      store.update({ ...volume, metadata: { ...volume.metadata, resourceVersion: '' } }),
      (error) =>
        isHornbillError(error, 'RESOURCE_INVALID') && error.details.field === 'metadata.resourceVersion',
    );
    const before = sent.length;
    await store.update(volume);
    assert.equal(sent.length, before + 1, 'a no-op update reads and writes nothing');
  });

  test('updateStatus: PUT to the status subresource', async () => {
    const { httpApi, sent } = recorder((request) => [200, request.body]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await store.updateStatus({ ...normalizeObject<Volume>(stored), status: { state: 'detached' } });
    assert.equal(sent[0].method, 'PUT');
    assert.equal(sent[0].url.pathname, '/apis/hornbill.io/v1beta1/namespaces/ns/volumes/vol1/status');
    assert.deepEqual((sent[0].body as { status: unknown }).status, { state: 'detached' });
    await assert.rejects(
      store.updateStatus({ ...normalizeObject<Volume>(stored), status: { state: 'sideways' as never } }),
      (error) => isHornbillError(error, 'RESOURCE_INVALID') && error.details.field === 'status.state',
    );
  });

  test('patch: a conditional JSON merge patch, to the status subresource when asked', async () => {
    const { httpApi, sent } = recorder((request) => [200, request.method === 'GET' ? stored : stored]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await store.patch(key, { status: { state: 'attached' } }, { subresource: 'status' });
    assert.equal(sent[1].method, 'PATCH');
    assert.equal(sent[1].url.pathname, '/apis/hornbill.io/v1beta1/namespaces/ns/volumes/vol1/status');
    assert.equal(sent[1].contentType, 'application/merge-patch+json');
    assert.deepEqual(sent[1].body, { status: { state: 'attached' }, metadata: { resourceVersion: '5' } });
    await store.patch(key, { metadata: { labels: { tier: 'gold' } }, spec: { numberOfReplicas: 2 } });
    assert.equal(sent[3].url.pathname, '/apis/hornbill.io/v1beta1/namespaces/ns/volumes/vol1');
    assert.equal(sent[3].contentType, 'application/merge-patch+json');
    assert.deepEqual(sent[3].body, {
      metadata: { labels: { tier: 'gold' }, resourceVersion: '5' },
      spec: { numberOfReplicas: 2 },
    });
    await assert.rejects(
      store.patch(key, { metadata: { resourceVersion: '4' }, spec: { numberOfReplicas: 2 } }),
      (error) => isHornbillError(error, 'RESOURCE_CONFLICT'),
    );
    await assert.rejects(store.patch(key, { spec: { numberOfReplicas: 0 } }), (error) =>
      isHornbillError(error, 'RESOURCE_INVALID'),
    );
  });

  test('delete: the policy and a uid precondition; a Status answer means removed', async () => {
    const { httpApi, sent } = recorder((request) =>
      request.method === 'GET'
        ? [200, stored]
        : [
            200,
            { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name: 'vol1', uid: 'uid-1' } },
          ],
    );
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    const result = await store.delete(key, { propagationPolicy: 'Orphan' });
    assert.equal(result.removed, true);
    assert.equal(result.object.metadata.uid, 'uid-1');
    assert.equal(sent[1].method, 'DELETE');
    assert.equal(sent[1].url.pathname, '/apis/hornbill.io/v1beta1/namespaces/ns/volumes/vol1');
    assert.deepEqual(sent[1].body, {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: 'Orphan',
      preconditions: { uid: 'uid-1' },
    });
  });

  test('delete held by finalizers answers the object with deletionTimestamp', async () => {
    const held = {
      ...stored,
      metadata: { ...stored.metadata, finalizers: ['f'], deletionTimestamp: '2026-01-02T03:04:06Z' },
    };
    const { httpApi } = recorder((request) => [200, request.method === 'GET' ? stored : held]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    const result = await store.delete(key);
    assert.equal(result.removed, false);
    assert.equal(result.object.metadata.deletionTimestamp, '2026-01-02T03:04:06Z');
  });

  test('HTTP failures arrive as coded errors', async () => {
    const { httpApi } = recorder(() => [
      403,
      { kind: 'Status', code: 403, reason: 'Forbidden', message: 'volumes.hornbill.io is forbidden' },
    ]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await assert.rejects(
      store.get(key),
      (error) => isHornbillError(error, 'KUBERNETES_FORBIDDEN') && error.details.status === 403,
    );
  });

  test('recordEvent: create, then conditional merge patches that count repeats', async () => {
    let resourceVersion = 0;
    const { httpApi, sent } = recorder((request) => {
      resourceVersion++;
      if (request.method === 'POST') {
        const body = request.body as { metadata: object };
        return [
          201,
          { ...body, metadata: { ...body.metadata, uid: 'e', resourceVersion: String(resourceVersion) } },
        ];
      }
      const patch = request.body as { count: number; lastTimestamp: string };
      return [
        200,
        {
          metadata: { name: 'x', namespace: 'ns', resourceVersion: String(resourceVersion) },
          involvedObject: { kind: 'Volume', name: 'vol1', namespace: 'ns' },
          count: patch.count,
          lastTimestamp: patch.lastTimestamp,
        },
      ];
    });
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi, clock: () => NOW });
    const input: EventInput = {
      involvedObject: { kind: 'Volume', namespace: 'ns', name: 'vol1' },
      type: 'Normal',
      reason: 'Attached',
      message: 'attached to node-1',
      component: 'hornbill-test',
    };
    const first = await store.recordEvent(input);
    const second = await store.recordEvent(input);
    assert.equal(first.count, 1);
    assert.equal(second.count, 2);
    assert.equal(sent[0].method, 'POST');
    assert.equal(sent[0].url.pathname, '/api/v1/namespaces/ns/events');
    assert.equal(sent[1].method, 'PATCH');
    assert.equal(sent[1].url.pathname, `/api/v1/namespaces/ns/events/${eventName(input)}`);
    assert.equal(sent[1].contentType, 'application/merge-patch+json');
    assert.deepEqual(sent[1].body, {
      metadata: { resourceVersion: '1' },
      count: 2,
      lastTimestamp: '2026-01-02T03:04:05Z',
    });
    await assert.rejects(store.recordEvent({ ...input, reason: 'not camel' }), (error) =>
      isHornbillError(error, 'RESOURCE_INVALID'),
    );
  });

  test('listEvents: field selector by involved object', async () => {
    const { httpApi, sent } = recorder(() => [200, { items: [], metadata: {} }]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await store.listEvents({ namespace: 'ns', involvedObject: { kind: 'Volume', name: 'vol1' } });
    assert.equal(sent[0].url.pathname, '/api/v1/namespaces/ns/events');
    assert.equal(
      sent[0].url.searchParams.get('fieldSelector'),
      'involvedObject.kind=Volume,involvedObject.name=vol1',
    );
    await store.listEvents();
    assert.equal(sent[1].url.pathname, '/api/v1/events');
  });

  test('discovery finds missing kinds', async () => {
    const { httpApi } = recorder(() => [
      200,
      {
        kind: 'APIResourceList',
        groupVersion: 'hornbill.io/v1beta1',
        resources: [{ name: 'volumes', namespaced: true, kind: 'Volume', verbs: [] }],
      },
    ]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await assert.rejects(
      store.checkResourceTypes(),
      (error) =>
        isHornbillError(error, 'KUBERNETES_RESOURCE_TYPE_MISSING') &&
        (error.details.missing as string[]).includes('engines'),
    );
  });

  test('after close every call is RESOURCE_STORE_CLOSED', async () => {
    const { httpApi, sent } = recorder(() => [200, stored]);
    const store = new KubernetesResourceStore(kubeConfig(), { httpApi });
    await store.close();
    await assert.rejects(store.get(key), (error) => isHornbillError(error, 'RESOURCE_STORE_CLOSED'));
    const watch = store.watch('Volume', { namespace: 'ns' });
    await assert.rejects(watch.next(), (error) => isHornbillError(error, 'RESOURCE_STORE_CLOSED'));
    assert.equal(sent.length, 0);
  });
});

describe('configuration and an unreachable API server', () => {
  test('a kubeconfig that cannot be read, or names no cluster, is KUBERNETES_CONFIG_INVALID', (t) => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-kubeconfig-'));
    t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
    assert.throws(
      () => loadKubeConfig({ kubeconfig: path.join(directory, 'missing') }),
      (error) => isHornbillError(error, 'KUBERNETES_CONFIG_INVALID'),
    );
    const empty = path.join(directory, 'empty');
    fs.writeFileSync(empty, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    assert.throws(
      () => loadKubeConfig({ kubeconfig: empty }),
      (error) => isHornbillError(error, 'KUBERNETES_CONFIG_INVALID'),
    );
    assert.throws(
      () => loadKubeConfig({ kubeConfig: undefined, kubeconfig: empty, context: 'nope' }),
      (error) => isHornbillError(error, 'KUBERNETES_CONFIG_INVALID'),
    );
  });

  test('open, requests and watches against a closed port fail with KUBERNETES_UNREACHABLE', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'gone', server: `https://127.0.0.1:${port}` }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'gone', cluster: 'gone', user: 'u' }],
      currentContext: 'gone',
    });
    const unreachable = (error: unknown) =>
      isHornbillError(error, 'KUBERNETES_UNREACHABLE') && error.details.status === 0;
    await assert.rejects(openKubernetesStore({ kubeConfig: config }), unreachable);
    const store = await openKubernetesStore({ kubeConfig: config, probe: false });
    await assert.rejects(store.get({ kind: 'Volume', namespace: 'ns', name: 'vol1' }), unreachable);
    const watch = store.watch('Volume', { namespace: 'ns', resourceVersion: '5' });
    await assert.rejects(watch.next(), unreachable);
    await store.close();
  });
});
