import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BlockDevice } from '../../../../src/dataplane/block-device.ts';
import { IscsiInitiator } from '../../../../src/dataplane/iscsi/initiator/initiator.ts';
import { Flag, Opcode, PduHeader, RejectReason } from '../../../../src/dataplane/iscsi/pdu.ts';
import { IscsiTarget } from '../../../../src/dataplane/iscsi/target.ts';
import { isHornbillError } from '../../../../src/errors.ts';
import { patternBytes } from '../../../helpers/temp.ts';
import { RawClient } from './raw-client.ts';
import { eventually, liveTarget } from './target-harness.ts';

const BLOCK = 512;

test('discovery lists the volume; a session reads what it wrote, with and without digests', async (t) => {
  const live = await liveTarget(t);
  const targets = await IscsiInitiator.discover({ host: '127.0.0.1', port: live.port });
  assert.deepEqual(targets, [{ targetName: live.targetName, addresses: [`127.0.0.1:${live.port},1`] }]);
  for (const digests of [false, true]) {
    const initiator = await IscsiInitiator.connect({
      host: '127.0.0.1',
      port: live.port,
      targetName: live.targetName,
      headerDigest: digests,
      dataDigest: digests,
    });
    assert.equal(initiator.negotiated.headerDigest, digests);
    assert.equal(initiator.negotiated.dataDigest, digests);
    const data = patternBytes(digests ? 11 : 10, 300 * BLOCK);
    await initiator.write(1000, data, { cdb: 16, fua: true });
    const back = Buffer.alloc(data.length);
    await initiator.read(1000, back, { cdb: 10 });
    assert.deepEqual(back, data);
    const direct = Buffer.alloc(data.length);
    live.store.read(1000 * BLOCK, direct);
    assert.deepEqual(direct, data, 'the data reached the replica store');
    const capacity = await initiator.readCapacity16();
    assert.equal(capacity.blocks, (16 * 1024 * 1024) / BLOCK);
    await initiator.logout();
  }
  assert.ok(await eventually(() => live.target.connectionCount === 0 && live.target.sessionCount === 0));
});

test('pipelined commands (queue depth 32) and R2T-solicited writes in small bursts', async (t) => {
  // A target that takes no unsolicited data and small bursts: every write goes through R2Ts.
  const live = await liveTarget(t, {
    initialR2T: true,
    immediateData: false,
    maxBurstLength: 8192,
    maxRecvDataSegmentLength: 4096,
  });
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port: live.port,
    targetName: live.targetName,
    queueDepth: 32,
    maxRecvDataSegmentLength: 4096,
  });
  assert.equal(initiator.negotiated.initialR2T, true);
  assert.equal(initiator.negotiated.maxBurstLength, 8192);
  const writes: Promise<void>[] = [];
  const expected = new Map<number, Buffer>();
  for (let index = 0; index < 64; index++) {
    const blocks = 1 + ((index * 37) % 128);
    const lba = index * 256;
    const data = patternBytes(100 + index, blocks * BLOCK);
    expected.set(lba, data);
    writes.push(initiator.write(lba, data));
  }
  await Promise.all(writes);
  const reads = [...expected].map(async ([lba, data]) => {
    const back = Buffer.alloc(data.length);
    await initiator.read(lba, back);
    assert.deepEqual(back, data, `LBA ${lba}`);
  });
  await Promise.all(reads);
  await initiator.synchronizeCache();
  await initiator.unmap([{ lba: 0, blocks: 256 }]);
  const zeros = Buffer.alloc(256 * BLOCK);
  await initiator.read(0, zeros);
  assert.ok(zeros.every((byte) => byte === 0));
  await initiator.logout();
});

test('CHAP: the right secret logs in (mutually), a wrong one is refused with 0x0201', async (t) => {
  const chap = {
    initiator: { username: 'alice', secret: 'a-secret-of-16-b' },
    target: { username: 'hornbill', secret: 'target-secret-16' },
  };
  const live = await liveTarget(t, { chap });
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port: live.port,
    targetName: live.targetName,
    chap,
  });
  await initiator.inquiry();
  await initiator.logout();
  await assert.rejects(
    IscsiInitiator.connect({
      host: '127.0.0.1',
      port: live.port,
      targetName: live.targetName,
      chap: { initiator: { username: 'alice', secret: 'the-wrong-secret' } },
    }),
    (error: unknown) => isHornbillError(error, 'ISCSI_LOGIN_FAILED') && error.details.status === 0x0201,
  );
  await assert.rejects(
    IscsiInitiator.connect({ host: '127.0.0.1', port: live.port, targetName: live.targetName }),
    (error: unknown) => isHornbillError(error, 'ISCSI_LOGIN_FAILED') && error.details.status === 0x0201,
  );
  assert.throws(
    () => new IscsiTarget({ chap: { initiator: { username: 'a', secret: 'short' } } }),
    /CHAP needs/,
  );
});

test('an unknown target name is refused with 0x0203; volume names are checked', async (t) => {
  const live = await liveTarget(t);
  await assert.rejects(
    IscsiInitiator.connect({
      host: '127.0.0.1',
      port: live.port,
      targetName: 'iqn.2026-11.io.hornbill:nope',
    }),
    (error: unknown) => isHornbillError(error, 'ISCSI_LOGIN_FAILED') && error.details.status === 0x0203,
  );
  assert.throws(
    () => live.target.addVolume('Bad Name', live.device),
    (error: unknown) => isHornbillError(error, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => live.target.addVolume('volume', live.device),
    (error: unknown) => isHornbillError(error, 'ISCSI_VOLUME_EXISTS'),
  );
  await assert.rejects(live.target.removeVolume('absent'), (error: unknown) =>
    isHornbillError(error, 'ISCSI_VOLUME_NOT_FOUND'),
  );
  const busy = new IscsiTarget({ port: live.port });
  await assert.rejects(busy.listen(), (error: unknown) => isHornbillError(error, 'ISCSI_LISTEN_FAILED'));
  await busy.close();
});

test('removeVolume ends its sessions and waits for their I/O', async (t) => {
  const live = await liveTarget(t);
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port: live.port,
    targetName: live.targetName,
  });
  await initiator.write(0, Buffer.alloc(BLOCK, 1));
  await live.target.removeVolume('volume');
  assert.equal(live.target.sessionCount, 0);
  await assert.rejects(initiator.read(0, Buffer.alloc(BLOCK)), (error: unknown) =>
    isHornbillError(error, 'ISCSI_CONNECTION_CLOSED'),
  );
  assert.ok(await eventually(() => live.target.connectionCount === 0));
  assert.deepEqual(live.target.listVolumes(), []);
});

test('NOP-In pings drop an initiator that stopped answering and keep one that answers', async (t) => {
  const live = await liveTarget(t, { nopIntervalMs: 1000, nopTimeoutMs: 1000 });
  const silent = await RawClient.connect(live.port);
  await silent.login(live.targetName);
  const alive = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port: live.port,
    targetName: live.targetName,
  });
  // The silent client reads pings but never answers; it is dropped after interval + timeout.
  assert.equal(await silent.waitClosed(8000), true);
  assert.ok(live.logs.some((entry) => String(entry.reason).includes('NOP-In ping')));
  await alive.inquiry();
  assert.equal(alive.isClosed, false, 'the initiator that answers pings keeps its session');
  await alive.logout();
});

test('an initiator that vanishes mid-command leaves no state behind', async (t) => {
  // A slow device keeps a read in flight while the initiator disappears.
  let slowReads = 0;
  const live = await liveTarget(t, {
    initialR2T: true,
    wrap: (device: BlockDevice): BlockDevice =>
      Object.create(device, {
        read: {
          value: async (offset: number, target: Uint8Array) => {
            slowReads++;
            await new Promise((resolve) => setTimeout(resolve, 200));
            await device.read(offset, target);
          },
        },
      }),
  });
  const before = Buffer.alloc(64 * BLOCK);
  live.store.read(0, before);
  const unit = live.target.findVolume(live.targetName)!.unit;

  // 1. The header of a WRITE announcing 64 KiB, then the socket is destroyed (no data).
  const writer = await RawClient.connect(live.port);
  await writer.login(live.targetName, [['InitialR2T', 'Yes']]);
  writer.send(writer.scsiCommand([0x2a, 0, 0, 0, 0, 0, 0, 0, 128, 0], { write: true, length: 128 * BLOCK }));
  const r2t = await writer.read();
  assert.equal(r2t?.header.opcode, Opcode.READY_TO_TRANSFER, 'the target asks for the data');
  writer.destroy();

  // 2. A READ in flight on the device when the socket goes.
  const reader = await RawClient.connect(live.port);
  await reader.login(live.targetName);
  reader.send(reader.scsiCommand([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], { read: true, length: 8 * BLOCK }));
  assert.ok(await eventually(() => slowReads > 0));
  reader.destroy();

  assert.ok(await eventually(() => live.target.connectionCount === 0 && live.target.sessionCount === 0));
  assert.ok(await eventually(() => unit.locks.heldCount === 0 && unit.attachedNexusCount === 0));
  const after = Buffer.alloc(64 * BLOCK);
  live.store.read(0, after);
  assert.deepEqual(after, before, 'the half-sent write changed nothing');

  // The next session works normally.
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port: live.port,
    targetName: live.targetName,
  });
  const data = patternBytes(42, 128 * BLOCK);
  await initiator.write(0, data);
  const back = Buffer.alloc(data.length);
  await initiator.read(0, back);
  assert.deepEqual(back, data);
  await initiator.logout();
});

test('a second login with the same ISID reinstates the session; Reject for bad PDUs in full feature phase', async (t) => {
  const live = await liveTarget(t);
  const first = await RawClient.connect(live.port);
  await first.login(live.targetName);
  const second = await RawClient.connect(live.port);
  await second.login(live.targetName);
  assert.equal(await first.waitClosed(), true, 'the older connection of the same initiator port ends');
  assert.equal(live.target.sessionCount, 1);
  // An unknown opcode gets a Reject (command not supported); the connection stays.
  const odd = new PduHeader();
  odd.opcode = 0x1c;
  odd.flags = Flag.FINAL;
  odd.initiatorTaskTag = second.tag();
  second.send(odd);
  const reject = await second.read();
  assert.equal(reject?.header.opcode, Opcode.REJECT);
  assert.equal(reject?.header.byte2, RejectReason.COMMAND_NOT_SUPPORTED);
  assert.deepEqual(reject?.data.subarray(0, 48), odd.bytes, 'the rejected header comes back');
  // A SCSI command still works afterwards.
  second.send(second.scsiCommand([0, 0, 0, 0, 0, 0]));
  const response = await second.read();
  assert.equal(response?.header.opcode, Opcode.SCSI_RESPONSE);
  assert.equal(response?.header.byte3, 0);
  second.destroy();
});

test('task management: ABORT TASK answers after the device is done, LUN RESET and PREEMPT AND ABORT reach other sessions', async (t) => {
  let release: (() => void) | null = null;
  let readsStarted = 0;
  const live = await liveTarget(t, {
    wrap: (device: BlockDevice): BlockDevice =>
      Object.create(device, {
        read: {
          value: async (offset: number, target: Uint8Array) => {
            readsStarted++;
            // Reads of LBA 1000 and above wait for the test to let them go.
            if (offset >= 1000 * BLOCK) await new Promise<void>((resolve) => (release = resolve));
            await device.read(offset, target);
          },
        },
      }),
  });
  const tmf = (
    client: RawClient,
    taskFunction: number,
    referenced = 0xffffffff,
    referencedCmdSN = 0,
  ): PduHeader => {
    const pdu = new PduHeader();
    pdu.opcode = Opcode.TASK_MANAGEMENT_REQUEST;
    pdu.immediate = true;
    pdu.flags = Flag.FINAL | taskFunction;
    pdu.initiatorTaskTag = client.tag();
    pdu.targetTransferTag = referenced;
    pdu.cmdSN = client.cmdSN;
    pdu.refCmdSN = referencedCmdSN;
    return pdu;
  };
  const a = await RawClient.connect(live.port);
  await a.login(live.targetName, [], 'iqn.2026-11.test:a');
  const b = await RawClient.connect(live.port);
  await b.login(live.targetName, [], 'iqn.2026-11.test:b');

  // ABORT TASK of a read stuck on the device: the answer waits until the device is done.
  const slowRead = a.scsiCommand([0x28, 0, 0, 0, 0x03, 0xe8, 0, 0, 1, 0], { read: true, length: BLOCK });
  a.send(slowRead);
  const before = readsStarted;
  assert.ok(await eventually(() => readsStarted > before));
  a.send(tmf(a, 1, slowRead.initiatorTaskTag, slowRead.cmdSN));
  assert.equal(await a.read(300), null, 'no answer while the read is on the device');
  release!();
  const aborted = await a.read();
  assert.equal(aborted?.header.opcode, Opcode.TASK_MANAGEMENT_RESPONSE);
  assert.equal(aborted?.header.byte2, 0, 'function complete');
  // The aborted read never answers; a finished task does not exist any more.
  a.send(tmf(a, 1, slowRead.initiatorTaskTag, slowRead.cmdSN));
  const missing = await a.read();
  assert.equal(missing?.header.opcode, Opcode.TASK_MANAGEMENT_RESPONSE);
  assert.equal(missing?.header.byte2, 1, 'task does not exist');

  // LOGICAL UNIT RESET from A: B gets a unit attention on its next command.
  a.send(tmf(a, 5));
  assert.equal((await a.read())?.header.byte2, 0);
  b.send(b.scsiCommand([0, 0, 0, 0, 0, 0]));
  const attention = await b.read();
  assert.equal(attention?.header.byte3, 0x02, 'CHECK CONDITION');
  assert.equal(attention?.data[2 + 2] & 0x0f, 0x06, 'UNIT ATTENTION');
  assert.equal(attention?.data.readUInt16BE(2 + 12), 0x2903, 'BUS DEVICE RESET FUNCTION OCCURRED');
  const aAttention = await (async () => {
    a.send(a.scsiCommand([0, 0, 0, 0, 0, 0]));
    return a.read();
  })();
  assert.equal(aAttention?.header.byte3, 0x02, 'the resetting nexus gets it too');

  // PREEMPT AND ABORT: B's registration goes and its read in flight is aborted.
  const prout = (
    client: RawClient,
    action: number,
    type: number,
    key: bigint,
    serviceActionKey: bigint,
  ): void => {
    const parameters = Buffer.alloc(24);
    parameters.writeBigUInt64BE(key, 0);
    parameters.writeBigUInt64BE(serviceActionKey, 8);
    const command = client.scsiCommand([0x5f, action, type, 0, 0, 0, 0, 0, 24, 0], {
      write: true,
      length: 24,
    });
    client.send(command, parameters);
  };
  prout(b, 0, 0, 0n, 0xbbn);
  assert.equal((await b.read())?.header.byte3, 0);
  prout(a, 0, 0, 0n, 0xaan);
  assert.equal((await a.read())?.header.byte3, 0);
  b.send(b.scsiCommand([0x28, 0, 0, 0, 0x07, 0xd0, 0, 0, 1, 0], { read: true, length: BLOCK }));
  const started = readsStarted;
  assert.ok(await eventually(() => readsStarted > started));
  prout(a, 5, 1, 0xaan, 0xbbn);
  const preempt = await a.read();
  release!();
  assert.equal(preempt?.header.opcode, Opcode.SCSI_RESPONSE);
  assert.equal(preempt?.header.byte3, 0, 'PREEMPT AND ABORT succeeds');
  b.send(b.scsiCommand([0, 0, 0, 0, 0, 0]));
  const next = await b.read();
  assert.equal(next?.header.opcode, Opcode.SCSI_RESPONSE, 'the aborted read sent nothing');
  assert.equal(next?.data.readUInt16BE(2 + 12), 0x2a05, 'REGISTRATIONS PREEMPTED');
  a.destroy();
  b.destroy();
});
