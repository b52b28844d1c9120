/**
 * Authentication and authorisation: bearer tokens with scopes read < write < admin;
 * anonymous reads only with the api-anonymous-read setting; CORS closed; GraphiQL for
 * browsers.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { findResource } from '../../../src/resources/index.ts';
import { type Harness, startHarness } from './harness.ts';

let harness: Harness;

before(async () => {
  harness = await startHarness();
});
after(async () => {
  await harness.close();
});

const CREATE =
  'mutation { createVolume(input: { name: "auth-vol", size: "1Gi" }) { volume { name } errors { code } } }';

async function volumeExists(): Promise<boolean> {
  return (
    (await findResource(harness.store, {
      kind: 'Volume',
      namespace: harness.namespace,
      name: 'auth-vol',
    })) !== undefined
  );
}

test('a query without a token, or with an unknown one, is refused with GRAPHQL_UNAUTHENTICATED', async () => {
  for (const token of [undefined, 'not-a-token', harness.tokens.read.slice(1), `${harness.tokens.read}x`]) {
    const { status, body } = await harness.request('{ volumes { totalCount } }', { token });
    assert.equal(status, 401, String(token));
    assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_UNAUTHENTICATED');
    assert.equal(body.data ?? undefined, undefined);
  }
  const response = await fetch(harness.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${harness.tokens.read}` },
    body: JSON.stringify({ query: '{ volumes { totalCount } }' }),
  });
  assert.equal(response.status, 401);
});

test('a read token may query but not mutate', async () => {
  const query = await harness.request('{ volumes { totalCount } }', { token: harness.tokens.read });
  assert.equal(query.status, 200);
  assert.equal(query.body.data?.volumes.totalCount, 0);
  const { status, body } = await harness.request(CREATE, { token: harness.tokens.read });
  assert.equal(status, 403);
  assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_FORBIDDEN');
  assert.equal(await volumeExists(), false);
});

test('a mutation without a token is refused and writes nothing', async () => {
  const { status, body } = await harness.request(CREATE);
  assert.equal(status, 401);
  assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_UNAUTHENTICATED');
  assert.equal(await volumeExists(), false);
});

test('a query may be sent with GET; a mutation sent with GET is refused', async () => {
  const query = `${harness.url}?query=${encodeURIComponent('{ volumes { totalCount } }')}`;
  const read = await fetch(query, {
    headers: { authorization: `Bearer ${harness.tokens.read}`, accept: 'application/json' },
  });
  assert.equal(read.status, 200);
  assert.deepEqual(await read.json(), { data: { volumes: { totalCount: 0 } } });
  const anonymous = await fetch(query, { headers: { accept: 'application/json' } });
  assert.equal(anonymous.status, 401);
  const url = `${harness.url}?query=${encodeURIComponent(CREATE)}`;
  const response = await fetch(url, { headers: { authorization: `Bearer ${harness.tokens.write}` } });
  assert.equal(response.status, 405);
  assert.equal(await volumeExists(), false);
});

test('a write token may mutate volumes but not settings, nodes or disks; admin may', async () => {
  const { body } = await harness.request(CREATE, { token: harness.tokens.write });
  assert.deepEqual(body.data?.createVolume, { volume: { name: 'auth-vol' }, errors: [] });
  assert.equal(await volumeExists(), true);
  const setting = 'mutation { updateSetting(name: "api-anonymous-read", value: "true") { errors { code } } }';
  const refused = await harness.request(setting, { token: harness.tokens.write });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.errors?.[0]?.extensions?.code, 'GRAPHQL_FORBIDDEN');
  const key = { kind: 'Setting' as const, namespace: harness.namespace, name: 'api-anonymous-read' };
  assert.equal(await findResource(harness.store, key), undefined);
  const allowed = await harness.request(setting, { token: harness.tokens.admin });
  assert.deepEqual(allowed.body.data?.updateSetting, { errors: [] });
  assert.equal((await findResource(harness.store, key))?.spec.value, 'true');
});

test('with api-anonymous-read, queries need no token; mutations and unknown tokens are still refused', async () => {
  const anonymous = await harness.request('{ volumes { nodes { name } } }');
  assert.equal(anonymous.status, 200);
  assert.deepEqual(anonymous.body.data?.volumes.nodes, [{ name: 'auth-vol' }]);
  const mutation = await harness.request('mutation { deleteVolume(name: "auth-vol") { errors { code } } }');
  assert.equal(mutation.body.errors?.[0]?.extensions?.code, 'GRAPHQL_UNAUTHENTICATED');
  assert.equal(await volumeExists(), true);
  const wrong = await harness.request('{ volumes { totalCount } }', { token: 'wrong' });
  assert.equal(wrong.body.errors?.[0]?.extensions?.code, 'GRAPHQL_UNAUTHENTICATED');
  await harness.store.patch(
    { kind: 'Setting', namespace: harness.namespace, name: 'api-anonymous-read' },
    { spec: { value: 'false' } },
  );
  const closed = await harness.request('{ volumes { totalCount } }');
  assert.equal(closed.body.errors?.[0]?.extensions?.code, 'GRAPHQL_UNAUTHENTICATED');
});

test('introspection needs no token', async () => {
  const { status, body } = await harness.request('{ __schema { queryType { name } mutationType { name } } }');
  assert.equal(status, 200);
  assert.deepEqual(body.data, {
    __schema: { queryType: { name: 'Query' }, mutationType: { name: 'Mutation' } },
  });
});

test('CORS is closed: no Access-Control-Allow-Origin, even for a preflight', async () => {
  const preflight = await fetch(harness.url, {
    method: 'OPTIONS',
    headers: {
      origin: 'https://evil.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });
  assert.equal(preflight.headers.get('access-control-allow-origin'), null);
  const post = await fetch(harness.url, {
    method: 'POST',
    headers: {
      origin: 'https://evil.example',
      'content-type': 'application/json',
      authorization: `Bearer ${harness.tokens.read}`,
    },
    body: JSON.stringify({ query: '{ volumes { totalCount } }' }),
  });
  assert.equal(post.headers.get('access-control-allow-origin'), null);
});

test('GraphiQL answers a browser at GET /graphql', async () => {
  const response = await fetch(harness.url, { headers: { accept: 'text/html' } });
  assert.equal(response.status, 200);
  assert.match(await response.text(), /<title>Hornbill GraphQL<\/title>/);
});
