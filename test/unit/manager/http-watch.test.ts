/**
 * HttpResourceStore's watches against a scripted server: events before an ERROR line, a
 * clean end, a broken stream, lines that are not events, and many events to a slow reader.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isHornbillError } from '../../../src/errors.ts';
import { HttpResourceStore } from '../../../src/manager/http-store.ts';

type Script = (response: http.ServerResponse) => Promise<void>;

async function scripted(t: TestContext, script: Script): Promise<HttpResourceStore> {
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.flushHeaders();
    script(response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const store = new HttpResourceStore({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  t.after(async () => {
    await store.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return store;
}

const event = (type: string, name: string) =>
  `${JSON.stringify({ type, object: { kind: 'Volume', metadata: { name, resourceVersion: name } } })}\n`;

test('events, then an ERROR line: the events first, then the coded error', async (t) => {
  const store = await scripted(t, async (response) => {
    response.write(event('ADDED', 'a') + event('MODIFIED', 'a'));
    response.end(
      `${JSON.stringify({ type: 'ERROR', object: { code: 'RESOURCE_GONE', message: 'too old', details: { x: 1 } } })}\n`,
    );
  });
  const watch = store.watch('Volume', { namespace: 'ns', resourceVersion: '1' });
  assert.equal((await watch.next()).value?.type, 'ADDED');
  assert.equal((await watch.next()).value?.type, 'MODIFIED');
  await assert.rejects(watch.next(), (error: unknown) => {
    assert.ok(isHornbillError(error, 'RESOURCE_GONE'));
    assert.deepEqual(error.details, { x: 1 });
    return true;
  });
  assert.equal((await watch.next()).done, true, 'a failed watch is over');
});

test('a clean end ends the iteration; a broken stream is MANAGER_UNREACHABLE', async (t) => {
  const clean = await scripted(t, async (response) => {
    response.end(event('ADDED', 'a'));
  });
  const events = [];
  for await (const item of clean.watch('Volume')) events.push(item.type);
  assert.deepEqual(events, ['ADDED']);

  const broken = await scripted(t, async (response) => {
    response.write(event('ADDED', 'a'));
    await sleep(50);
    response.destroy();
  });
  const watch = broken.watch('Volume');
  assert.equal((await watch.next()).done, false);
  await assert.rejects(watch.next(), (error: unknown) => isHornbillError(error, 'MANAGER_UNREACHABLE'));
});

test('a line that is not an event is MANAGER_BAD_RESPONSE', async (t) => {
  for (const line of ['not json\n', '{"type":"EXPLODED","object":{}}\n', '[1]\n']) {
    const store = await scripted(t, async (response) => {
      response.end(line);
    });
    await assert.rejects(store.watch('Volume').next(), (error: unknown) =>
      isHornbillError(error, 'MANAGER_BAD_RESPONSE'),
    );
  }
});

test('many events to a slow reader arrive complete and in order', async (t) => {
  const count = 5000;
  const store = await scripted(t, async (response) => {
    for (let index = 0; index < count; index++) {
      if (!response.write(event('ADDED', String(index))))
        await new Promise((resolve) => response.once('drain', resolve));
    }
    response.end();
  });
  let expected = 0;
  for await (const item of store.watch('Volume')) {
    assert.equal(item.object.metadata.name, String(expected));
    expected++;
    if (expected % 1000 === 0) await sleep(20);
  }
  assert.equal(expected, count);
});

test('abort and close end a waiting watch', async (t) => {
  const store = await scripted(t, async () => {
    await sleep(60_000, undefined, { ref: false });
  });
  const controller = new AbortController();
  const aborted = store.watch('Volume', { signal: controller.signal });
  const waiting = aborted.next();
  await sleep(50);
  controller.abort();
  assert.equal((await waiting).done, true);
  const closed = store.watch('Volume');
  const pending = closed.next();
  closed.close();
  assert.equal((await pending).done, true);
});
