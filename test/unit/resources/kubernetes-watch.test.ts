/**
 * KubernetesWatch (src/resources/store/kubernetes-watch.ts) over a scripted connector: the
 * test plays the API server's side of one watch request at a time (lines, then the end).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { KubernetesWatch, type WatchConnector } from '../../../src/resources/store/kubernetes-watch.ts';

interface Item {
  metadata: { name: string; resourceVersion: string };
}

interface Connection {
  resourceVersion: string;
  send(type: string, object: unknown): void;
  end(error?: unknown): void;
  aborted: boolean;
}

function item(name: string, resourceVersion: string): Item {
  return { metadata: { name, resourceVersion } };
}

/** A connector whose requests the test drives; `opened` resolves on each new request. */
function scripted(options: { fail?: unknown } = {}) {
  const connections: Connection[] = [];
  let waiting: ((connection: Connection) => void) | undefined;
  const connect: WatchConnector = async (resourceVersion, onEvent, onDone) => {
    if (options.fail !== undefined) throw options.fail;
    const connection: Connection = {
      resourceVersion,
      aborted: false,
      send: (type, object) => onEvent(type, object),
      end: (error) => onDone(error ?? null),
    };
    connections.push(connection);
    waiting?.(connection);
    waiting = undefined;
    return {
      abort() {
        connection.aborted = true;
        onDone(new DOMException('aborted', 'AbortError'));
      },
    };
  };
  const opened = () =>
    new Promise<Connection>((resolve) => {
      waiting = resolve;
    });
  return { connect, connections, opened };
}

function watchOf(
  connect: WatchConnector,
  extra: Partial<ConstructorParameters<typeof KubernetesWatch<Item>>[0]> = {},
): KubernetesWatch<Item> {
  return new KubernetesWatch<Item>({
    connect,
    start: async () => ({ resourceVersion: '10', initial: [] }),
    normalize: (raw) => raw as Item,
    resourceVersionOf: (object) => object.metadata.resourceVersion,
    kind: 'Volume',
    namespace: 'ns',
    ...extra,
  });
}

describe('KubernetesWatch', () => {
  test('initial objects first, then events in order; bookmarks move the cursor silently', async () => {
    const server = scripted();
    const watch = watchOf(server.connect, {
      start: async () => ({ resourceVersion: '10', initial: [item('a', '9')] }),
    });
    const first = await watch.next();
    assert.deepEqual(first.value, { type: 'ADDED', object: item('a', '9') });
    const opened = server.opened();
    const next = watch.next();
    const connection = await opened;
    assert.equal(connection.resourceVersion, '10');
    connection.send('MODIFIED', item('a', '11'));
    assert.deepEqual((await next).value, { type: 'MODIFIED', object: item('a', '11') });
    connection.send('BOOKMARK', { metadata: { resourceVersion: '15' } });
    connection.send('DELETED', item('a', '16'));
    assert.deepEqual((await watch.next()).value, { type: 'DELETED', object: item('a', '16') });
    assert.equal(watch.resourceVersion, '16');
    watch.close();
  });

  test('a request the server ends continues from the last resourceVersion (a bookmark too)', async () => {
    const server = scripted();
    const watch = watchOf(server.connect);
    let opened = server.opened();
    const pending = watch.next();
    const first = await opened;
    first.send('ADDED', item('a', '12'));
    assert.equal((await pending).value?.object.metadata.name, 'a');
    first.send('BOOKMARK', { metadata: { resourceVersion: '20' } });
    opened = server.opened();
    const waiting = watch.next();
    first.end();
    const second = await opened;
    assert.equal(second.resourceVersion, '20');
    second.send('ADDED', item('b', '21'));
    assert.equal((await waiting).value?.object.metadata.name, 'b');
    // client-node's 30 s idle timeout also just continues.
    opened = server.opened();
    const again = watch.next();
    second.end(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    const third = await opened;
    assert.equal(third.resourceVersion, '21');
    third.send('MODIFIED', item('b', '22'));
    assert.equal((await again).value?.type, 'MODIFIED');
    watch.close();
  });

  test('an ERROR event with 410 ends the watch with RESOURCE_GONE, after the events before it', async () => {
    const server = scripted();
    const watch = watchOf(server.connect);
    const opened = server.opened();
    const pending = watch.next();
    const connection = await opened;
    connection.send('ADDED', item('a', '11'));
    connection.send('ERROR', {
      kind: 'Status',
      code: 410,
      reason: 'Expired',
      message: 'too old resource version: 10 (30)',
    });
    assert.equal((await pending).value?.type, 'ADDED');
    await assert.rejects(watch.next(), (error) => isHornbillError(error, 'RESOURCE_GONE'));
    assert.equal(connection.aborted, true);
    assert.equal((await watch.next()).done, true);
  });

  test('an HTTP failure of the watch request is mapped (410 → RESOURCE_GONE, 403 → KUBERNETES_FORBIDDEN)', async () => {
    for (const [status, code] of [
      [410, 'RESOURCE_GONE'],
      [403, 'KUBERNETES_FORBIDDEN'],
    ] as const) {
      const server = scripted();
      const watch = watchOf(server.connect);
      const opened = server.opened();
      const pending = watch.next();
      (await opened).end(Object.assign(new Error('failed'), { statusCode: status }));
      await assert.rejects(pending, (error) => isHornbillError(error, code));
    }
  });

  test('a network failure is KUBERNETES_UNREACHABLE, never an unhandled rejection', async () => {
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }),
    });
    const watch = watchOf(scripted({ fail: refused }).connect);
    await assert.rejects(watch.next(), (error) => isHornbillError(error, 'KUBERNETES_UNREACHABLE'));
  });

  test('a failed start (list) is raised by the first next()', async () => {
    const watch = watchOf(scripted().connect, {
      start: async () => {
        throw Object.assign(new Error('Forbidden'), { statusCode: 403 });
      },
    });
    await assert.rejects(watch.next(), (error) => isHornbillError(error, 'KUBERNETES_FORBIDDEN'));
  });

  test('close() and an aborted signal end a waiting next() and abort the request', async () => {
    const server = scripted();
    const watch = watchOf(server.connect);
    const opened = server.opened();
    const pending = watch.next();
    const connection = await opened;
    watch.close();
    assert.equal((await pending).done, true);
    await Promise.resolve();
    assert.equal(connection.aborted, true);

    const controller = new AbortController();
    const second = scripted();
    const aborted = watchOf(second.connect, { signal: controller.signal });
    const secondOpened = second.opened();
    const waiting = aborted.next();
    await secondOpened;
    controller.abort();
    assert.equal((await waiting).done, true);
    const early = watchOf(scripted().connect, { signal: AbortSignal.abort() });
    assert.equal((await early.next()).done, true);
  });

  test('a consumer that falls too far behind gets RESOURCE_GONE instead of unbounded memory', async () => {
    const server = scripted();
    const watch = watchOf(server.connect, { maxBufferedEvents: 3 });
    const opened = server.opened();
    const pending = watch.next();
    const connection = await opened;
    for (let index = 0; index < 10; index++) connection.send('ADDED', item(`v${index}`, String(11 + index)));
    const received = [(await pending).value?.object.metadata.name];
    for (;;) {
      try {
        const next = await watch.next();
        if (next.done) break;
        received.push(next.value.object.metadata.name);
      } catch (error) {
        assert.ok(isHornbillError(error, 'RESOURCE_GONE'));
        break;
      }
    }
    assert.ok(received.length <= 4, `received ${received.length}`);
  });

  test('a request that ends at once is not retried in a tight loop', async () => {
    const server = scripted();
    let now = 0;
    const watch = watchOf(server.connect, { clock: () => now });
    const opened = server.opened();
    const pending = watch.next();
    const first = await opened;
    const started = Date.now();
    const reopened = server.opened();
    first.end();
    await reopened;
    assert.ok(Date.now() - started >= 900, 'waited before reconnecting');
    now += 5_000;
    watch.close();
    assert.equal((await pending).done, true);
  });
});
