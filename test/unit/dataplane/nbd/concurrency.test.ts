import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NBD, type NbdReply, NbdTestClient } from '../../../helpers/nbd-client.ts';
import { patternBytes } from '../../../helpers/temp.ts';
import { eventually, GatedDevice, MiB, startServer } from './fixture.ts';

function gated() {
  let device: GatedDevice | undefined;
  return {
    wrap: (inner: ConstructorParameters<typeof GatedDevice>[0]) => {
      device = new GatedDevice(inner);
      return device;
    },
    get device(): GatedDevice {
      assert.ok(device);
      return device;
    },
  };
}

/** Deterministic shuffle (xorshift) so a failure reproduces. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let index = out.length - 1; index > 0; index--) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const pick = (state >>> 0) % (index + 1);
    [out[index], out[pick]] = [out[pick], out[index]];
  }
  return out;
}

describe('NBD: many requests in flight', () => {
  for (const structured of [false, true]) {
    test(`replies come back out of order, matched by handle (${structured ? 'structured' : 'simple'})`, async (t) => {
      const gate = gated();
      const fixture = await startServer(t, { wrapDevice: gate.wrap });
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      // 32 writes to distinct places, all held by the device, completed in a shuffled order.
      const writes: Promise<NbdReply>[] = [];
      for (let index = 0; index < 32; index++) {
        writes.push(
          client.request(NBD.CMD_WRITE, { offset: index * 8192, payload: patternBytes(100 + index, 8192) }),
        );
      }
      await eventually(() => gate.device.waiting.length === 32, '32 writes at the device');
      assert.equal(fixture.server.stats().requestsInFlight, 32);
      for (const entry of shuffled(gate.device.waiting.splice(0), 7)) entry.release();
      for (const reply of await Promise.all(writes)) assert.equal(reply.error, 0);
      // Reads of the same places, released in another order: each gets its own data.
      const reads = Array.from({ length: 32 }, (_, index) =>
        client.request(NBD.CMD_READ, { offset: index * 8192, length: 8192 }),
      );
      await eventually(() => gate.device.waiting.length === 32, '32 reads at the device');
      for (const entry of shuffled(gate.device.waiting.splice(0), 11)) entry.release();
      const replies = await Promise.all(reads);
      for (const [index, reply] of replies.entries()) {
        assert.ok(reply.data!.equals(patternBytes(100 + index, 8192)), `read ${index}`);
      }
      assert.equal(fixture.server.stats().requestsInFlight, 0);
    });
  }

  test('at most maxInFlightPerConnection requests run; the rest wait in the socket and then complete', async (t) => {
    const gate = gated();
    const fixture = await startServer(t, {
      wrapDevice: gate.wrap,
      serverOptions: { maxInFlightPerConnection: 4 },
    });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol');
    t.after(() => client.destroy());
    const writes = Array.from({ length: 40 }, (_, index) =>
      client.write(index * 4096, patternBytes(index, 4096)),
    );
    await eventually(() => gate.device.waiting.length === 4, 'four requests at the device');
    // Nothing beyond the limit was started, however long we look.
    for (let round = 0; round < 20; round++) {
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(gate.device.waiting.length, 4);
      assert.ok(fixture.server.stats().requestsInFlight <= 4);
    }
    gate.device.gated = false;
    gate.device.releaseAll();
    await Promise.all(writes);
    const stored = fixture.readAll();
    for (let index = 0; index < 40; index++) {
      assert.ok(
        stored.subarray(index * 4096, (index + 1) * 4096).equals(patternBytes(index, 4096)),
        `block ${index}`,
      );
    }
  });

  test('an exhausted payload pool stops reading until buffers come back, across connections', async (t) => {
    const gate = gated();
    const fixture = await startServer(t, {
      sizeBytes: 128 * MiB,
      wrapDevice: gate.wrap,
      serverOptions: { payloadPoolBytes: 32 * MiB },
    });
    const first = (await NbdTestClient.attach(fixture.port, 'vol')).client;
    const second = (await NbdTestClient.attach(fixture.port, 'vol')).client;
    t.after(() => first.destroy());
    t.after(() => second.destroy());
    const data = Array.from({ length: 6 }, (_, index) => patternBytes(50 + index, 16 * MiB));
    const writes = data.map((bytes, index) =>
      (index % 2 === 0 ? first : second).write(index * 16 * MiB, bytes),
    );
    await eventually(() => gate.device.waiting.length === 2, 'two 16 MiB writes at the device');
    assert.equal(fixture.server.stats().payloadBytesInUse, 32 * MiB);
    await eventually(() => fixture.server.pool.waiterCount >= 1, 'a connection waits for the pool');
    assert.equal(gate.device.waiting.length, 2, 'no third write got a buffer');
    // Release one at a time: each release lets exactly the next write in.
    for (let released = 0; released < 6; released++) {
      await eventually(() => gate.device.waiting.length > 0, 'a write at the device');
      assert.ok(gate.device.waiting.length <= 2);
      gate.device.waiting.shift()!.release();
    }
    await Promise.all(writes);
    const stored = fixture.readAll();
    for (const [index, bytes] of data.entries()) {
      assert.ok(stored.subarray(index * 16 * MiB, (index + 1) * 16 * MiB).equals(bytes), `write ${index}`);
    }
    await eventually(() => fixture.server.stats().payloadBytesInUse === 0, 'buffers returned');
  });

  test('with multi-conn, a flush on one connection covers writes completed on another', async (t) => {
    const fixture = await startServer(t);
    const writer = (await NbdTestClient.attach(fixture.port, 'vol')).client;
    const reader = (await NbdTestClient.attach(fixture.port, 'vol')).client;
    t.after(() => writer.destroy());
    t.after(() => reader.destroy());
    const data = patternBytes(77, 64 * 1024);
    await writer.write(0, data);
    let flushed = 0;
    const realFlush = fixture.store.flush.bind(fixture.store);
    fixture.store.flush = () => {
      flushed++;
      realFlush();
    };
    assert.equal(await reader.command(NBD.CMD_FLUSH), 0);
    assert.equal(flushed, 1, 'the flush reached the one shared store');
    assert.ok((await reader.read(0, data.length)).equals(data));
  });
});

describe('NBD: connections that end', () => {
  test('DISC with requests in flight: they are answered, then the server closes', async (t) => {
    const gate = gated();
    const fixture = await startServer(t, { wrapDevice: gate.wrap });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol');
    const writes = [0, 1, 2].map((index) =>
      client.request(NBD.CMD_WRITE, { offset: index * 4096, payload: patternBytes(index, 4096) }),
    );
    await eventually(() => gate.device.waiting.length === 3, 'three writes at the device');
    void client.request(NBD.CMD_DISC);
    gate.device.releaseAll();
    for (const reply of await Promise.all(writes)) assert.equal(reply.error, 0);
    await client.closed;
    await eventually(() => fixture.server.stats().connectionsOpen === 0, 'connection closed');
  });

  for (const how of ['closes (FIN)', 'resets (RST)'] as const) {
    test(`a client that ${how} mid-request leaks nothing; the next client works`, async (t) => {
      const gate = gated();
      const fixture = await startServer(t, { wrapDevice: gate.wrap });
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured: true });
      for (let index = 0; index < 8; index++) {
        client.request(NBD.CMD_READ, { offset: index * 4096, length: 4096 }).catch(() => {});
      }
      await eventually(() => gate.device.waiting.length === 8, 'eight reads at the device');
      // A write header and half of its payload, then the client is gone.
      const header = Buffer.alloc(28);
      header.writeUInt32BE(NBD.REQUEST_MAGIC, 0);
      header.writeUInt16BE(NBD.CMD_WRITE, 6);
      header.writeUInt32BE(65536, 24);
      client.socket.write(Buffer.concat([header, Buffer.alloc(30000, 0xee)]));
      await eventually(() => fixture.server.stats().payloadBuffersInUse === 9, 'the write buffer taken');
      if (how === 'resets (RST)') {
        client.socket.resetAndDestroy();
        // A reset is seen at once: the connection closes while the device still holds 8 reads.
        await eventually(() => fixture.server.stats().connectionsOpen === 0, 'connection closed');
      } else {
        client.destroy();
        // A FIN may be a half-close: the server answers what is in flight before closing.
        await eventually(
          () => fixture.server.stats().payloadBuffersInUse === 8,
          'the half-received write dropped',
        );
        assert.equal(fixture.server.stats().connectionsOpen, 1);
      }
      assert.equal(
        fixture.server.stats().payloadBuffersInUse,
        8,
        'only buffers still at the device are held',
      );
      gate.device.gated = false;
      gate.device.releaseAll();
      await eventually(() => fixture.server.stats().connectionsOpen === 0, 'connection closed');
      await eventually(() => fixture.server.stats().payloadBytesInUse === 0, 'every buffer back in the pool');
      assert.equal(fixture.server.stats().requestsInFlight, 0);
      assert.ok(fixture.readAll().equals(Buffer.alloc(16 * MiB)), 'the half-sent write was never applied');
      const next = (await NbdTestClient.attach(fixture.port, 'vol')).client;
      await next.write(0, patternBytes(3, 4096));
      assert.ok((await next.read(0, 4096)).equals(patternBytes(3, 4096)));
      await next.disconnect();
    });
  }

  test('removeExport: in-flight requests finish, new ones get ESHUTDOWN, then the connection closes', async (t) => {
    const gate = gated();
    const fixture = await startServer(t, { wrapDevice: gate.wrap });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured: true });
    const inFlight = [0, 1, 2].map((index) =>
      client.request(NBD.CMD_WRITE, { offset: index * 4096, payload: patternBytes(index, 4096) }),
    );
    await eventually(() => gate.device.waiting.length === 3, 'three writes at the device');
    let removed = false;
    const removal = fixture.server.removeExport('vol').then(() => {
      removed = true;
    });
    const late = await client.request(NBD.CMD_WRITE, { offset: 65536, payload: patternBytes(9, 4096) });
    assert.equal(late.error, NBD.ESHUTDOWN);
    assert.equal(removed, false, 'removal waits for the requests in flight');
    gate.device.releaseAll();
    for (const reply of await Promise.all(inFlight)) assert.equal(reply.error, 0);
    await removal;
    await client.closed;
    const stored = fixture.readAll();
    assert.ok(
      stored.subarray(0, 12288).equals(Buffer.concat([0, 1, 2].map((index) => patternBytes(index, 4096)))),
    );
    assert.ok(
      stored.subarray(65536, 65536 + 4096).equals(Buffer.alloc(4096)),
      'the refused write was not applied',
    );
  });

  test('a device that never answers: close destroys the connection after the drain timeout', async (t) => {
    const gate = gated();
    const fixture = await startServer(t, { wrapDevice: gate.wrap, serverOptions: { drainTimeoutMs: 50 } });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol');
    const stuck = client.request(NBD.CMD_READ, { offset: 0, length: 4096 });
    stuck.catch(() => {});
    await eventually(() => gate.device.waiting.length === 1, 'a read at the device');
    await fixture.server.close();
    await client.closed;
    assert.ok(fixture.logs.some((record) => record.message.includes('did not drain in time')));
    assert.equal(fixture.server.stats().payloadBuffersInUse, 1, 'the device still holds the read buffer');
    gate.device.releaseAll();
    await eventually(
      () => fixture.server.stats().payloadBuffersInUse === 0,
      'buffer returned when the device answered',
    );
  });
});
