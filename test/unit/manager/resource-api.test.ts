/**
 * The resource API's HTTP edges, in process over an embedded store: statuses and coded
 * error bodies, body limits, patch types, deletion held by finalizers, watch streams and
 * their limit, events, a clean end of watches at shutdown, and random requests that must
 * never be answered 500 or stop the server. HttpResourceStore's own failures too.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import { HttpResourceStore } from '../../../src/manager/http-store.ts';
import { addResourceApi, type ResourceApi } from '../../../src/manager/resource-api.ts';
import { HttpRouter, type ListeningServer, listenHttp } from '../../../src/manager/router.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

const namespace = 'hornbill-system';
const base = `/apis/hornbill.io/v1beta1/namespaces/${namespace}`;

interface Served {
  url: string;
  server: ListeningServer;
  api: ResourceApi;
}

async function serve(t: TestContext, maxWatches = 4): Promise<Served> {
  const store = await openEmbeddedStore({ directory: tempDirectory(t), probe: false, changeLogLimit: 8 });
  const router = new HttpRouter({ log: silentLogger });
  const api = addResourceApi(router, { store, log: silentLogger, maxWatches });
  const server = await listenHttp(router, { host: '127.0.0.1', port: 0 });
  defer(t, () => {
    void server.close().then(() => store.close());
  });
  return { url: `http://127.0.0.1:${server.port}`, server, api };
}

async function call(
  served: Served,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${served.url}${path}`, { method, body, headers });
  const text = await response.text();
  return { status: response.status, json: text === '' ? {} : JSON.parse(text) };
}

const volume = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ metadata: { name, ...extra }, spec: { size: '1Gi' } });

test('statuses and codes: 201, 200, 404, 405, 409, 422, 400, 413, 415', async (t) => {
  const served = await serve(t);
  const created = await call(served, 'POST', `${base}/volumes`, volume('vol1'));
  assert.equal(created.status, 201);
  assert.equal((created.json.metadata as { uid: string }).uid.length > 0, true);
  assert.equal((await call(served, 'GET', `${base}/volumes/vol1`)).status, 200);
  const cases: [string, string, string | undefined, Record<string, string>, number, string][] = [
    ['GET', `${base}/volumes/nope`, undefined, {}, 404, 'RESOURCE_NOT_FOUND'],
    ['GET', `${base}/widgets`, undefined, {}, 404, 'MANAGER_ROUTE_NOT_FOUND'],
    ['GET', '/nothing/here', undefined, {}, 404, 'MANAGER_ROUTE_NOT_FOUND'],
    ['DELETE', `${base}/volumes`, undefined, {}, 405, 'MANAGER_METHOD_NOT_ALLOWED'],
    ['POST', `${base}/volumes`, volume('vol1'), {}, 409, 'RESOURCE_ALREADY_EXISTS'],
    [
      'POST',
      `${base}/volumes`,
      JSON.stringify({ metadata: { name: 'v2' }, spec: { size: '0' } }),
      {},
      422,
      'RESOURCE_INVALID',
    ],
    ['POST', `${base}/volumes`, JSON.stringify({ metadata: { name: 'v3' } }), {}, 422, 'RESOURCE_INVALID'],
    ['POST', `${base}/volumes`, '{"metadata":', {}, 400, 'MANAGER_BAD_REQUEST'],
    ['POST', `${base}/volumes`, '[1,2]', {}, 400, 'MANAGER_BAD_REQUEST'],
    [
      'POST',
      `${base}/volumes`,
      JSON.stringify({ kind: 'Engine', metadata: { name: 'x' }, spec: {} }),
      {},
      400,
      'MANAGER_BAD_REQUEST',
    ],
    ['POST', `${base}/volumes`, volume('x', { namespace: 'elsewhere' }), {}, 400, 'MANAGER_BAD_REQUEST'],
    ['POST', `${base}/volumes`, JSON.stringify({ metadata: 'x' }), {}, 400, 'MANAGER_BAD_REQUEST'],
    ['PUT', `${base}/volumes/vol1`, volume('other'), {}, 400, 'MANAGER_BAD_REQUEST'],
    ['GET', `${base}/volumes?labelSelector=a+in+(b`, undefined, {}, 400, 'INVALID_ARGUMENT'],
    ['GET', `${base}/volumes?watch=maybe`, undefined, {}, 400, 'MANAGER_BAD_REQUEST'],
    [
      'PATCH',
      `${base}/volumes/vol1`,
      '[]',
      { 'content-type': 'application/json-patch+json' },
      415,
      'MANAGER_UNSUPPORTED_MEDIA_TYPE',
    ],
    ['POST', `${base}/volumes`, 'x'.repeat(1024 * 1024 + 1), {}, 413, 'MANAGER_BODY_TOO_LARGE'],
    ['GET', '/api/v1/events?fieldSelector=reason%3DX', undefined, {}, 400, 'MANAGER_BAD_REQUEST'],
  ];
  for (const [method, path, body, headers, status, code] of cases) {
    const answer = await call(served, method, path, body, headers);
    assert.equal(answer.status, status, `${method} ${path}: ${JSON.stringify(answer.json)}`);
    assert.equal(answer.json.code, code, `${method} ${path}`);
    assert.equal(typeof answer.json.message, 'string');
    assert.equal(typeof answer.json.details, 'object');
  }
  const stale = await call(
    served,
    'PATCH',
    `${base}/volumes/vol1`,
    JSON.stringify({ metadata: { resourceVersion: '999' }, spec: { numberOfReplicas: 2 } }),
    { 'content-type': 'application/merge-patch+json' },
  );
  assert.equal(stale.status, 409);
  assert.equal(stale.json.code, 'RESOURCE_CONFLICT');
});

test('DELETE: 202 while finalizers hold the object, 200 once removed; propagationPolicy is checked', async (t) => {
  const served = await serve(t);
  await call(served, 'POST', `${base}/volumes`, volume('vol1', { finalizers: ['hornbill.io/test'] }));
  const held = await call(served, 'DELETE', `${base}/volumes/vol1`);
  assert.equal(held.status, 202);
  assert.ok((held.json.metadata as { deletionTimestamp?: string }).deletionTimestamp);
  const released = await call(
    served,
    'PATCH',
    `${base}/volumes/vol1`,
    JSON.stringify({ metadata: { finalizers: null } }),
    { 'content-type': 'application/merge-patch+json' },
  );
  assert.equal(released.status, 200);
  assert.equal((await call(served, 'GET', `${base}/volumes/vol1`)).status, 404);
  await call(served, 'POST', `${base}/volumes`, volume('vol2'));
  const policy = await call(served, 'DELETE', `${base}/volumes/vol2?propagationPolicy=Sometimes`);
  assert.equal(policy.status, 400);
  const removed = await call(
    served,
    'DELETE',
    `${base}/volumes/vol2`,
    JSON.stringify({ propagationPolicy: 'Orphan' }),
    {
      'content-type': 'application/json',
    },
  );
  assert.equal(removed.status, 200);
});

/** Opens a raw watch and collects its lines; `ended` tells whether the stream ended complete. */
function rawWatch(url: string): Promise<{
  lines: string[];
  response: http.IncomingMessage;
  request: http.ClientRequest;
  ended: Promise<boolean>;
}> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const request = http.get(url, (response) => {
      let partial = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        partial += chunk;
        const parts = partial.split('\n');
        partial = parts.pop() ?? '';
        lines.push(...parts.filter(Boolean));
      });
      response.on('error', () => {});
      const ended = new Promise<boolean>((done) => {
        response.on('end', () => done(response.complete));
        response.on('close', () => done(response.complete));
      });
      resolve({ lines, response, request, ended });
    });
    request.on('error', reject);
  });
}

test('watch: NDJSON events, a limit on open watches, ERROR lines, clean end at shutdown', async (t) => {
  const served = await serve(t, 2);
  const first = await rawWatch(`${served.url}${base}/volumes?watch=1`);
  const second = await rawWatch(`${served.url}${base}/volumes?watch=true`);
  const third = await call(served, 'GET', `${base}/volumes?watch=1`);
  assert.equal(third.status, 429);
  assert.equal(third.json.code, 'MANAGER_LIMIT_REACHED');
  await call(served, 'POST', `${base}/volumes`, volume('vol1'));
  for (let attempt = 0; first.lines.length === 0 && attempt < 100; attempt++) await sleep(20);
  const event = JSON.parse(first.lines[0]);
  assert.equal(event.type, 'ADDED');
  assert.equal(event.object.metadata.name, 'vol1');
  second.request.destroy();
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await call(served, 'GET', `${base}/volumes?watch=1&resourceVersion=abc`)).status === 200) break;
    await sleep(20);
  }
  const invalid = await rawWatch(`${served.url}${base}/volumes?watch=1&resourceVersion=abc`);
  await invalid.ended;
  assert.equal(JSON.parse(invalid.lines[0]).type, 'ERROR');
  assert.equal(JSON.parse(invalid.lines[0]).object.code, 'INVALID_ARGUMENT');
  const ended = new Promise<boolean>((resolve) =>
    first.response.on('end', () => resolve(first.response.complete)),
  );
  await served.api.closeWatches();
  assert.equal(await ended, true, 'the stream ends with its last chunk, not a broken connection');
});

test('events: POST the recorder input, list by namespace and involved object', async (t) => {
  const served = await serve(t);
  const input = {
    involvedObject: { kind: 'Volume', name: 'vol1' },
    type: 'Normal',
    reason: 'Attached',
    message: 'attached to node-1',
    component: 'test',
  };
  const first = await call(served, 'POST', `/api/v1/namespaces/${namespace}/events`, JSON.stringify(input));
  assert.equal(first.status, 201);
  assert.equal(first.json.count, 1);
  const again = await call(served, 'POST', `/api/v1/namespaces/${namespace}/events`, JSON.stringify(input));
  assert.equal(again.json.count, 2);
  const listed = await call(
    served,
    'GET',
    `/api/v1/namespaces/${namespace}/events?fieldSelector=involvedObject.kind%3DVolume,involvedObject.name%3Dvol1`,
  );
  assert.equal((listed.json.items as unknown[]).length, 1);
  const none = await call(served, 'GET', '/api/v1/events?fieldSelector=involvedObject.name%3Dvol2');
  assert.equal((none.json.items as unknown[]).length, 0);
  const bad = await call(
    served,
    'POST',
    `/api/v1/namespaces/${namespace}/events`,
    JSON.stringify({ ...input, reason: 'not camel' }),
  );
  assert.equal(bad.status, 422);
});

test('random requests are answered with a coded error, never 500, and the server keeps serving', async (t) => {
  const served = await serve(t);
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
  const paths = [
    `${base}/volumes`,
    `${base}/volumes/vol1`,
    `${base}/volumes/vol1/status`,
    `${base}/settings/default-replica-count`,
    `${base}/engines/`,
    '/apis/hornbill.io/v1beta1/namespaces//volumes',
    '/apis/hornbill.io/v1beta1/nodes',
    `/api/v1/namespaces/${namespace}/events`,
    '/apis/hornbill.io/v1beta1/namespaces/%ZZ/volumes',
  ];
  const bodies = [
    undefined,
    '',
    'null',
    '{}',
    '{"metadata":{"name":"vol1"},"spec":{"size":"1Gi"}}',
    '{"metadata":{"name":5},"spec":[]}',
    '{"metadata":{"name":"vol1","labels":7,"finalizers":"x","ownerReferences":{}},"spec":{"size":{}}}',
    '{"status":{"state":42},"metadata":{"name":"vol1","resourceVersion":3}}',
    '{"involvedObject":"x","type":"Bad"}',
    '{"involvedObject":{"kind":1},"reason":[],"message":{},"component":null,"type":"Normal"}',
    '\u0000\u0001garbage',
  ];
  let seed = 7;
  const pick = <T>(items: T[]): T => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return items[seed % items.length];
  };
  for (let index = 0; index < 300; index++) {
    const method = pick(methods);
    const path = pick(paths);
    const body = method === 'GET' ? undefined : pick(bodies);
    const answer = await call(served, method, path, body, { 'content-type': 'application/json' });
    assert.ok(
      answer.status < 500,
      `${method} ${path} ${body}: ${answer.status} ${JSON.stringify(answer.json)}`,
    );
    if (answer.status >= 400) assert.equal(typeof answer.json.code, 'string');
  }
  assert.equal((await call(served, 'GET', '/apis/hornbill.io/v1beta1')).status, 200);
});

test('HttpResourceStore: MANAGER_UNREACHABLE without a manager; closed store and watches', async (t) => {
  const served = await serve(t);
  const store = new HttpResourceStore({ url: served.url });
  const watch = store.watch('Volume', { namespace });
  await store.create({ kind: 'Volume', metadata: { name: 'vol1', namespace }, spec: { size: '1Gi' } });
  const next = await watch.next();
  assert.equal(next.done, false);
  await served.server.close();
  await assert.rejects(store.list('Volume'), (error: unknown) =>
    isHornbillError(error, 'MANAGER_UNREACHABLE'),
  );
  const broken = await watch.next().then(
    (result) => result,
    (error: unknown) => error,
  );
  assert.ok(
    (broken as IteratorResult<unknown>).done === true || isHornbillError(broken, 'MANAGER_UNREACHABLE'),
    `a watch of a stopped server ends or fails: ${String(broken)}`,
  );
  const refused = store.watch('Volume', { namespace });
  await assert.rejects(refused.next(), (error: unknown) => isHornbillError(error, 'MANAGER_UNREACHABLE'));
  await store.close();
  await assert.rejects(store.get({ kind: 'Volume', namespace, name: 'vol1' }), (error: unknown) =>
    isHornbillError(error, 'RESOURCE_STORE_CLOSED'),
  );
  await assert.rejects(store.watch('Volume', { namespace }).next(), (error: unknown) =>
    isHornbillError(error, 'RESOURCE_STORE_CLOSED'),
  );
});
