import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StoreBlockDevice } from '../../../../src/dataplane/store-block-device.ts';
import {
  infoOptionData,
  metaContextOptionData,
  NBD,
  NbdTestClient,
  rawExchange,
} from '../../../helpers/nbd-client.ts';
import { eventually, MiB, startServer } from './fixture.ts';

const WRITABLE_FLAGS =
  NBD.FLAG_HAS_FLAGS |
  NBD.FLAG_SEND_FLUSH |
  NBD.FLAG_SEND_FUA |
  NBD.FLAG_SEND_TRIM |
  NBD.FLAG_SEND_WRITE_ZEROES |
  NBD.FLAG_SEND_FAST_ZERO |
  NBD.FLAG_CAN_MULTI_CONN;

function refusalReasons(logs: { level: string; details: Record<string, unknown> }[]): string[] {
  return logs.filter((record) => record.level === 'warn').map((record) => String(record.details.reason));
}

describe('NBD handshake: greeting and client flags', () => {
  test('the server greets with NBDMAGIC, IHAVEOPT and fixed newstyle + no zeroes', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.connect(port);
    t.after(() => client.destroy());
    await client.readGreeting();
    assert.equal(client.handshakeFlags, 0b11);
  });

  test('a client without fixed newstyle (plain newstyle or oldstyle) is disconnected with a reason', async (t) => {
    const { port, logs, server } = await startServer(t);
    const flags = Buffer.alloc(4); // client flags 0: plain newstyle
    const { received } = await rawExchange(port, [flags]);
    assert.equal(received.length, 18, 'nothing but the greeting is sent');
    assert.ok(refusalReasons(logs).some((reason) => reason.includes('fixed newstyle')));
    assert.equal(server.stats().protocolViolations, 1);
  });

  test('unknown client flags close the connection', async (t) => {
    const { port, logs } = await startServer(t);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(0b101, 0);
    const { received } = await rawExchange(port, [flags]);
    assert.equal(received.length, 18);
    assert.ok(refusalReasons(logs).some((reason) => reason.includes('unknown client flags')));
  });

  test('a bad option magic closes the connection', async (t) => {
    const { port, logs } = await startServer(t);
    const client = await NbdTestClient.open(port);
    client.socket.write(Buffer.alloc(16, 0x41));
    await client.closed;
    assert.ok(refusalReasons(logs).some((reason) => reason.includes('bad option magic')));
  });

  test('a client that does not finish the handshake in time is disconnected, even if it trickles bytes', async (t) => {
    const { port, logs } = await startServer(t, { serverOptions: { handshakeTimeoutMs: 150 } });
    const client = await NbdTestClient.open(port);
    // An option header sent one byte at a time, more often than the deadline: still cut off.
    const header = Buffer.alloc(16);
    header.writeBigUInt64BE(NBD.OPTION_MAGIC, 0);
    header.writeUInt32BE(NBD.OPT_LIST, 8);
    const trickle = setInterval(() => {
      if (header.length > 0 && !client.isClosed) client.socket.write(header.subarray(0, 1));
    }, 20);
    t.after(() => clearInterval(trickle));
    await client.closed;
    assert.ok(refusalReasons(logs).some((reason) => reason.includes('in time')));
  });
});

describe('NBD handshake: options', () => {
  test('NBD_OPT_LIST names every export; data makes it invalid', async (t) => {
    const fixture = await startServer(t);
    fixture.server.addExport('second', new StoreBlockDevice(fixture.store, 'second'), { readOnly: true });
    const client = await NbdTestClient.open(fixture.port);
    t.after(() => client.destroy());
    const listing = await client.list();
    assert.equal(listing.final, NBD.REP_ACK);
    assert.deepEqual(listing.names.sort(), ['second', 'vol']);
    const invalid = await client.option(NBD.OPT_LIST, Buffer.from('x'));
    assert.equal(invalid.type, NBD.REP_ERR_INVALID);
    assert.ok(invalid.data.length > 0, 'errors carry a message');
  });

  test('NBD_OPT_INFO reports size, flags, block sizes, name and description, and stays in the handshake', async (t) => {
    const { port } = await startServer(t, { sizeBytes: 8 * MiB });
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    const info = await client.infoOrGo(NBD.OPT_INFO, 'vol', [
      NBD.INFO_NAME,
      NBD.INFO_DESCRIPTION,
      NBD.INFO_BLOCK_SIZE,
    ]);
    assert.equal(info.final, NBD.REP_ACK);
    assert.equal(info.sizeBytes, 8 * MiB);
    assert.equal(info.flags, WRITABLE_FLAGS);
    assert.deepEqual(info.blockSize, { minimum: 512, preferred: 4096, maximum: 32 * MiB });
    assert.equal(info.name, 'vol');
    assert.equal(info.description, 'Hornbill volume vol');
    // Still negotiating: another option works.
    assert.equal((await client.list()).final, NBD.REP_ACK);
  });

  test('NBD_OPT_GO with structured replies adds NBD_FLAG_SEND_DF; then the client is in transmission', async (t) => {
    const { port, server } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    assert.equal((await client.option(NBD.OPT_STRUCTURED_REPLY)).type, NBD.REP_ACK);
    const info = await client.infoOrGo(NBD.OPT_GO, 'vol');
    assert.equal(info.final, NBD.REP_ACK);
    assert.equal(info.flags, WRITABLE_FLAGS | NBD.FLAG_SEND_DF);
    await eventually(() => server.stats().connectionsAttached === 1, 'attached');
    client.startTransmission(true);
    assert.equal((await client.read(0, 4096)).length, 4096);
    await client.disconnect();
  });

  test('a read-only export advertises READ_ONLY and none of the write features', async (t) => {
    const { port } = await startServer(t, { exportOptions: { readOnly: true, multiConnection: false } });
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    const info = await client.infoOrGo(NBD.OPT_INFO, 'vol');
    assert.equal(info.flags, NBD.FLAG_HAS_FLAGS | NBD.FLAG_READ_ONLY | NBD.FLAG_SEND_FLUSH);
  });

  test('INFO/GO for an unknown export answer NBD_REP_ERR_UNKNOWN and the handshake goes on', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    assert.equal((await client.infoOrGo(NBD.OPT_INFO, 'nope')).final, NBD.REP_ERR_UNKNOWN);
    assert.equal((await client.infoOrGo(NBD.OPT_GO, 'nope')).final, NBD.REP_ERR_UNKNOWN);
    assert.equal((await client.infoOrGo(NBD.OPT_GO, 'vol')).final, NBD.REP_ACK);
  });

  test('INFO/GO with inconsistent lengths answer NBD_REP_ERR_INVALID', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    const good = infoOptionData('vol', [NBD.INFO_NAME]);
    const cases = [
      Buffer.alloc(3), // shorter than 6
      good.subarray(0, good.length - 1), // request list cut
      Buffer.concat([good, Buffer.alloc(1)]), // trailing byte
      (() => {
        const bytes = Buffer.from(good);
        bytes.writeUInt32BE(1000, 0); // name length beyond the option
        return bytes;
      })(),
      infoOptionData('v\0l', []), // NUL in a string
      Buffer.concat([Buffer.from([0, 0, 0, 2, 0xc3, 0x28]), Buffer.alloc(2)]), // invalid UTF-8
    ];
    for (const data of cases) {
      assert.equal((await client.option(NBD.OPT_INFO, data)).type, NBD.REP_ERR_INVALID, data.toString('hex'));
      assert.equal((await client.option(NBD.OPT_GO, data)).type, NBD.REP_ERR_INVALID, data.toString('hex'));
    }
    assert.equal((await client.infoOrGo(NBD.OPT_INFO, 'vol')).final, NBD.REP_ACK);
  });

  test('unknown options and STARTTLS answer NBD_REP_ERR_UNSUP; STRUCTURED_REPLY with data is invalid', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    assert.equal((await client.option(4242, Buffer.from('whatever'))).type, NBD.REP_ERR_UNSUP);
    assert.equal((await client.option(NBD.OPT_STARTTLS)).type, NBD.REP_ERR_UNSUP);
    assert.equal((await client.option(NBD.OPT_STRUCTURED_REPLY, Buffer.alloc(1))).type, NBD.REP_ERR_INVALID);
    assert.equal((await client.option(NBD.OPT_STRUCTURED_REPLY)).type, NBD.REP_ACK);
  });

  test('an option longer than the limit is skipped and refused with NBD_REP_ERR_TOO_BIG', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    const big = Buffer.alloc(200 * 1024, 0x55);
    assert.equal((await client.option(NBD.OPT_GO, big)).type, NBD.REP_ERR_TOO_BIG);
    assert.equal((await client.infoOrGo(NBD.OPT_GO, 'vol')).final, NBD.REP_ACK);
  });

  test('too many oversized option bytes, or too many options, end the connection', async (t) => {
    const { port, logs } = await startServer(t);
    const flooder = await NbdTestClient.open(port);
    for (let index = 0; index < 8; index++) flooder.sendOption(NBD.OPT_INFO, Buffer.alloc(200 * 1024));
    await flooder.closed;
    const chatter = await NbdTestClient.open(port);
    for (let index = 0; index < 1100; index++) chatter.sendOption(NBD.OPT_STRUCTURED_REPLY);
    await chatter.closed;
    const reasons = refusalReasons(logs);
    assert.ok(reasons.some((reason) => reason.includes('oversized options')));
    assert.ok(reasons.some((reason) => reason.includes('options in one handshake')));
  });

  test('NBD_OPT_ABORT is acknowledged and the server ends the connection', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    assert.equal((await client.option(NBD.OPT_ABORT)).type, NBD.REP_ACK);
    await client.closed;
  });

  test('NBD_OPT_EXPORT_NAME: size and flags, with and without the 124 zero bytes', async (t) => {
    const { port } = await startServer(t, { sizeBytes: 4 * MiB });
    const padded = await NbdTestClient.open(port, { clientFlags: 0b01 });
    t.after(() => padded.destroy());
    const withZeroes = await padded.exportName('vol', false);
    assert.equal(withZeroes.sizeBytes, 4 * MiB);
    assert.equal(withZeroes.flags, WRITABLE_FLAGS);
    assert.ok(withZeroes.padding.equals(Buffer.alloc(124)));
    padded.startTransmission(false);
    assert.equal((await padded.read(4 * MiB - 512, 512)).length, 512);

    const bare = await NbdTestClient.open(port);
    t.after(() => bare.destroy());
    const withoutZeroes = await bare.exportName('vol', true);
    assert.equal(withoutZeroes.sizeBytes, 4 * MiB);
    bare.startTransmission(false);
    assert.equal((await bare.read(0, 512)).length, 512, 'no padding was sent before the reply');
  });

  test('NBD_OPT_EXPORT_NAME for an unknown export ends the connection (no error reply exists)', async (t) => {
    const { port, logs } = await startServer(t);
    const client = await NbdTestClient.open(port);
    client.sendOption(NBD.OPT_EXPORT_NAME, Buffer.from('missing'));
    await client.closed;
    assert.ok(refusalReasons(logs).some((reason) => reason.includes("unknown export 'missing'")));
  });
});

describe('NBD handshake: metadata contexts', () => {
  test('meta context options need structured replies first', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    assert.equal((await client.setMetaContext('vol', ['base:allocation'])).final, NBD.REP_ERR_INVALID);
  });

  test('LIST_META_CONTEXT offers base:allocation for no query and for base:; SET selects it', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    await client.option(NBD.OPT_STRUCTURED_REPLY);
    for (const queries of [[], ['base:'], ['base:allocation'], ['qemu:dirty-bitmap:x', 'base:allocation']]) {
      const listed = await client.setMetaContext('vol', queries, NBD.OPT_LIST_META_CONTEXT);
      assert.equal(listed.final, NBD.REP_ACK);
      assert.deepEqual(
        listed.contexts.map((context) => context.name),
        ['base:allocation'],
        JSON.stringify(queries),
      );
    }
    const other = await client.setMetaContext('vol', ['qemu:allocation-depth'], NBD.OPT_LIST_META_CONTEXT);
    assert.deepEqual(other, { contexts: [], final: NBD.REP_ACK });
    // SET ignores "base:" and unknown namespaces, selects base:allocation.
    assert.deepEqual(await client.setMetaContext('vol', ['base:', 'x-other:thing']), {
      contexts: [],
      final: NBD.REP_ACK,
    });
    const set = await client.setMetaContext('vol', ['base:allocation']);
    assert.equal(set.final, NBD.REP_ACK);
    assert.equal(set.contexts.length, 1);
    assert.equal(set.contexts[0].name, 'base:allocation');
    assert.notEqual(set.contexts[0].id, 0);
    assert.equal((await client.setMetaContext('missing', ['base:allocation'])).final, NBD.REP_ERR_UNKNOWN);
  });

  test('malformed meta context options are invalid, too many queries too big', async (t) => {
    const { port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    await client.option(NBD.OPT_STRUCTURED_REPLY);
    const good = metaContextOptionData('vol', ['base:allocation']);
    const broken = [
      good.subarray(0, 7),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.alloc(2)]),
      (() => {
        const bytes = Buffer.from(good);
        bytes.writeUInt32BE(2, 7); // two queries announced, one present
        return bytes;
      })(),
    ];
    for (const data of broken) {
      assert.equal(
        (await client.option(NBD.OPT_SET_META_CONTEXT, data)).type,
        NBD.REP_ERR_INVALID,
        data.toString('hex'),
      );
    }
    const many = metaContextOptionData(
      'vol',
      Array.from({ length: 200 }, () => 'base:allocation'),
    );
    assert.equal((await client.option(NBD.OPT_LIST_META_CONTEXT, many)).type, NBD.REP_ERR_TOO_BIG);
  });

  test('block status is refused (EINVAL) when the context was set for another export', async (t) => {
    const fixture = await startServer(t);
    fixture.server.addExport('other', new StoreBlockDevice(fixture.store, 'other'));
    const client = await NbdTestClient.open(fixture.port);
    t.after(() => client.destroy());
    await client.option(NBD.OPT_STRUCTURED_REPLY);
    assert.equal((await client.setMetaContext('other', ['base:allocation'])).contexts.length, 1);
    assert.equal((await client.infoOrGo(NBD.OPT_GO, 'vol')).final, NBD.REP_ACK);
    client.startTransmission(true);
    assert.equal((await client.blockStatus(0, 4096)).error, NBD.EINVAL);
  });
});

describe('NBD handshake: exports come and go', () => {
  test('addExport refuses duplicates and bad names; removeExport of an unknown name fails', async (t) => {
    const { server, device } = await startServer(t);
    assert.throws(() => server.addExport('vol', device), { code: 'NBD_EXPORT_EXISTS' });
    assert.throws(() => server.addExport('', device), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => server.addExport('a\0b', device), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => server.addExport('x'.repeat(4097), device), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(server.removeExport('nope'), { code: 'NBD_EXPORT_NOT_FOUND' });
  });

  test('a removed export is no longer offered', async (t) => {
    const { server, port } = await startServer(t);
    await server.removeExport('vol');
    const client = await NbdTestClient.open(port);
    t.after(() => client.destroy());
    assert.deepEqual((await client.list()).names, []);
    assert.equal((await client.infoOrGo(NBD.OPT_GO, 'vol')).final, NBD.REP_ERR_UNKNOWN);
  });

  test('while the server closes, a client in the handshake is ended', async (t) => {
    const { server, port } = await startServer(t);
    const client = await NbdTestClient.open(port);
    await client.list();
    await server.close();
    await client.closed;
    assert.equal(server.stats().connectionsOpen, 0);
  });
});
