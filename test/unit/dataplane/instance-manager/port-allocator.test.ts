import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import {
  isPortFree,
  PortAllocator,
  parsePortRange,
} from '../../../../src/dataplane/instance-manager/port-allocator.ts';
import { HornbillError, isHornbillError } from '../../../../src/errors.ts';

const always = async () => true;

test('port ranges are FIRST-LAST within 1-65535', () => {
  assert.deepEqual(parsePortRange('10000-10999'), { first: 10000, last: 10999 });
  assert.deepEqual(parsePortRange(' 5-5 '), { first: 5, last: 5 });
  for (const text of ['', '10000', '10-5', '0-10', '1-65536', 'a-b', '1-2-3', '-1-5'])
    assert.throws(
      () => parsePortRange(text),
      (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
      text,
    );
});

test('without a range every allocation is 0 (the replica binds a free port)', async () => {
  const allocator = new PortAllocator({ host: '127.0.0.1', range: undefined, probe: always });
  assert.equal(await allocator.allocate(), 0);
  assert.equal(await allocator.allocate(), 0);
  assert.deepEqual(allocator.reservedPorts, []);
});

test('ports are handed out in order, each once, and a released port is not reused at once', async () => {
  const allocator = new PortAllocator({ host: '127.0.0.1', range: { first: 100, last: 103 }, probe: always });
  assert.deepEqual(
    [await allocator.allocate(), await allocator.allocate(), await allocator.allocate()],
    [100, 101, 102],
  );
  allocator.release(101);
  assert.equal(await allocator.allocate(), 103);
  assert.equal(await allocator.allocate(), 101, 'the cursor wraps around to the released port');
  assert.deepEqual(allocator.reservedPorts, [100, 101, 102, 103]);
});

test('concurrent allocations never get the same port', async () => {
  const allocator = new PortAllocator({
    host: '127.0.0.1',
    range: { first: 200, last: 209 },
    probe: () => new Promise((resolve) => setTimeout(() => resolve(true), 5)),
  });
  const ports = await Promise.all(Array.from({ length: 10 }, () => allocator.allocate()));
  assert.equal(new Set(ports).size, 10);
});

test('ports that cannot be bound are skipped; a full range is INSTANCE_LIMIT_REACHED', async () => {
  const busy = new Set([300, 302]);
  const allocator = new PortAllocator({
    host: '127.0.0.1',
    range: { first: 300, last: 303 },
    probe: async (_host, port) => !busy.has(port),
  });
  assert.equal(await allocator.allocate(), 301);
  assert.equal(await allocator.allocate(), 303);
  await assert.rejects(allocator.allocate(), (error) => {
    assert.ok(error instanceof HornbillError);
    assert.equal(error.code, 'INSTANCE_LIMIT_REACHED');
    assert.deepEqual({ first: error.details.first, last: error.details.last }, { first: 300, last: 303 });
    return true;
  });
  busy.delete(302);
  assert.equal(await allocator.allocate(), 302, 'a port freed by its other user is found again');
});

test('the default probe really binds: a port held by a listening socket is skipped', async (t) => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const held = (holder.address() as net.AddressInfo).port;
  assert.equal(await isPortFree('127.0.0.1', held), false);
  const allocator = new PortAllocator({ host: '127.0.0.1', range: { first: held, last: held + 1 } });
  let port: number;
  try {
    port = await allocator.allocate();
  } catch (error) {
    // held + 1 belongs to another process (tests run in parallel): then the whole range
    // is taken and the refusal is right.
    assert.ok(error instanceof HornbillError && error.code === 'INSTANCE_LIMIT_REACHED');
    assert.equal(await isPortFree('127.0.0.1', held + 1), false, 'refused although held + 1 is free');
    return;
  }
  assert.equal(port, held + 1, 'the held port is skipped');
  assert.equal(await isPortFree('127.0.0.1', port), true, 'the probe left the port free');
});
