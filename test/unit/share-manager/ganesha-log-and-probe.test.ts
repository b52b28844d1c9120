/**
 * Ganesha's log lines as records, the log follower on a growing file, and the NFS NULL probe
 * against fake RPC servers on loopback (a good reply, a denied one, silence, garbage).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogLevel } from '../../../src/logging.ts';
import { LogFollower, parseGaneshaLine } from '../../../src/share-manager/ganesha-log.ts';
import { checkNullReply, nullCallRecord, probeNfsNull } from '../../../src/share-manager/nfs-probe.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

const PREFIX = '26/11/2026 01:59:41 : epoch 6b07928d : vm : nfs-ganesha-14271';

describe('parseGaneshaLine', () => {
  it('maps levels and components, and lowers the container noise to debug', () => {
    const start = parseGaneshaLine(
      `${PREFIX}[main] nfs_start :NFS STARTUP :EVENT :             NFS SERVER INITIALIZED`,
    );
    assert.equal(start.level, 'info');
    assert.equal(start.message, 'NFS SERVER INITIALIZED');
    assert.deepEqual(start.details, {
      source: 'ganesha',
      component: 'NFS STARTUP',
      ganeshaLevel: 'EVENT',
      thread: 'main',
      function: 'nfs_start',
    });
    const fatal = parseGaneshaLine(
      `${PREFIX}[main] export_commit :CONFIG :CRIT :Export id 1 can not be added`,
    );
    assert.equal(fatal.level, 'error');
    const dbus = parseGaneshaLine(
      `${PREFIX}[main] gsh_dbus_register_path :DBUS :CRIT :dbus_connection_register_object_path called with no DBUS connection`,
    );
    assert.equal(dbus.level, 'debug');
    assert.equal(parseGaneshaLine('something else').message, 'something else');
  });
});

describe('LogFollower', () => {
  it('forwards each complete line once, including a last partial line on stop', async (t) => {
    const file = path.join(tempDirectory(t), 'ganesha.log');
    const records: [LogLevel, string][] = [];
    const follower = new LogFollower(file, (level, message) => records.push([level, message]));
    follower.start();
    await sleep(250); // the file does not exist yet: no error, nothing logged
    fs.writeFileSync(file, `${PREFIX}[main] a :MAIN :WARN :first\n${PREFIX}[main] b :MAIN :EVENT :sec`);
    await sleep(450);
    fs.appendFileSync(file, `ond\n${PREFIX}[main] c :MAIN :MAJ :third`);
    await follower.stop();
    assert.deepEqual(records, [
      ['warn', 'first'],
      ['info', 'second'],
      ['error', 'third'],
    ]);
  });
});

/** A TCP server answering each connection with `reply(call)` (or nothing when undefined). */
async function fakeRpcServer(
  t: Parameters<typeof tempDirectory>[0],
  reply: (call: Buffer) => Buffer | undefined,
) {
  const server = net.createServer((socket) => {
    socket.once('data', (call) => {
      const answer = reply(call);
      if (answer !== undefined) socket.write(answer);
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(t, () => server.close());
  return (server.address() as net.AddressInfo).port;
}

function replyRecord(xid: number, words: number[]): Buffer {
  const record = Buffer.alloc(4 + 4 * (words.length + 1));
  record.writeUInt32BE((0x8000_0000 | (4 * (words.length + 1))) >>> 0, 0);
  record.writeUInt32BE(xid, 4);
  words.forEach((word, index) => {
    record.writeUInt32BE(word, 8 + index * 4);
  });
  return record;
}

describe('NFS NULL probe', () => {
  it('encodes the call and checks a reply', () => {
    const call = nullCallRecord(0x01020304);
    assert.equal(call.length, 44);
    assert.equal(call.readUInt32BE(0), 0x8000_0028);
    assert.equal(call.readUInt32BE(16), 100003);
    assert.equal(checkNullReply(replyRecord(7, [1, 0, 0, 0, 0]), 7), 'success');
    assert.equal(checkNullReply(replyRecord(7, [1, 0, 0, 0, 2]), 7), 'accept status 2');
    assert.equal(checkNullReply(replyRecord(8, [1, 0, 0, 0, 0]), 7), 'reply to another call');
    assert.equal(checkNullReply(replyRecord(7, [1, 1, 0, 0, 0]), 7), 'call denied');
    assert.equal(checkNullReply(replyRecord(7, [1, 0, 0, 0, 0]).subarray(0, 10), 7), 'incomplete');
  });

  it('succeeds against a server that accepts, and explains every other outcome', async (t) => {
    const good = await fakeRpcServer(t, (call) => replyRecord(call.readUInt32BE(4), [1, 0, 0, 0, 0]));
    assert.equal(await probeNfsNull('127.0.0.1', good), undefined);
    const unavailable = await fakeRpcServer(t, (call) => replyRecord(call.readUInt32BE(4), [1, 0, 0, 0, 1]));
    assert.equal(await probeNfsNull('127.0.0.1', unavailable), 'accept status 1');
    const silent = await fakeRpcServer(t, () => undefined);
    assert.match((await probeNfsNull('127.0.0.1', silent, 300)) ?? '', /no answer in 300 ms/);
    const garbage = await fakeRpcServer(t, () => Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    assert.notEqual(await probeNfsNull('127.0.0.1', garbage, 500), undefined);
  });
});
