import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BlockDevice } from '../../../../src/dataplane/block-device.ts';
import { AdditionalSense, ScsiStatus, SenseKey } from '../../../../src/dataplane/iscsi/scsi/constants.ts';
import { cdb10, NEXUS_A, NEXUS_B, run, storeUnit, unitOver } from './scsi-harness.ts';

const inquiry = (page: number | null, allocation = 255): number[] => [
  0x12,
  page === null ? 0 : 1,
  page ?? 0,
  allocation >> 8,
  allocation & 0xff,
  0,
];

test('INQUIRY: standard data, the supported VPD pages, and errors for unknown pages', async (t) => {
  const { unit } = storeUnit(t);
  const standard = await run(unit, inquiry(null));
  assert.equal(standard.data[0], 0x00, 'connected direct-access device');
  assert.equal(standard.data[2], 0x06, 'SPC-4');
  assert.equal(standard.data.subarray(8, 16).toString(), 'HORNBILL');
  assert.equal(standard.data[7] & 0x02, 0x02, 'CMDQUE');
  assert.equal((await run(unit, inquiry(null, 5))).data.length, 5, 'allocation length truncates');
  const pages = await run(unit, inquiry(0x00));
  assert.deepEqual([...pages.data.subarray(4)], [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
  for (const page of [0x80, 0x83, 0xb0, 0xb1, 0xb2]) {
    const outcome = await run(unit, inquiry(page));
    assert.equal(outcome.status, ScsiStatus.GOOD);
    assert.equal(outcome.data[1], page);
    assert.equal(outcome.data.readUInt16BE(2) + 4, outcome.data.length, `page ${page.toString(16)} length`);
  }
  const limits = (await run(unit, inquiry(0xb0))).data;
  assert.equal(limits.readUInt32BE(8), 2048, 'MAXIMUM TRANSFER LENGTH: 1 MiB');
  assert.ok(limits.readUInt32BE(20) > 0, 'MAXIMUM UNMAP LBA COUNT');
  assert.ok(limits.readUInt32BE(40) > 0, 'MAXIMUM WRITE SAME LENGTH');
  const provisioning = (await run(unit, inquiry(0xb2))).data;
  assert.equal(provisioning[5] & 0xe4, 0xe4, 'LBPU, LBPWS, LBPWS10, LBPRZ');
  const identification = (await run(unit, inquiry(0x83))).data;
  assert.equal(identification[5] & 0x0f, 0x03, 'first designator is NAA');
  assert.equal(identification[8] >> 4, 0x3, 'NAA 3h: locally assigned');
  const again = (await run(storeUnit(t).unit, inquiry(0x83))).data;
  assert.deepEqual(
    again.subarray(8, 16),
    identification.subarray(8, 16),
    'derived from the volume name: stable',
  );
  const serial = (await run(unit, inquiry(0x80))).data.subarray(4).toString();
  assert.match(serial, /^[0-9a-f]{32}$/);
  const unknown = await run(unit, inquiry(0x99));
  assert.equal(unknown.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
  assert.equal(unknown.sense.readUInt16BE(16), 2);
  const pageWithoutEvpd = await run(unit, [0x12, 0, 0x80, 0, 255, 0]);
  assert.equal(pageWithoutEvpd.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('other LUNs: INQUIRY says not connected, REPORT LUNS lists LUN 0, the rest is LOGICAL UNIT NOT SUPPORTED', async (t) => {
  const { unit } = storeUnit(t);
  assert.equal((await run(unit, inquiry(null), { lun: 3 })).data[0], 0x7f);
  const luns = await run(unit, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], { lun: 3 });
  assert.equal(luns.data.readUInt32BE(0), 8);
  assert.deepEqual([...luns.data.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0]);
  const read = await run(unit, cdb10(0x28, 0, 1), { lun: 3 });
  assert.equal(read.additionalSense, AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED);
  const shortAllocation = await run(unit, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
  assert.equal(shortAllocation.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('MODE SENSE returns the caching and control pages; MODE SELECT changes WCE and D_SENSE', async (t) => {
  const { device } = storeUnit(t);
  let flushes = 0;
  const counting: BlockDevice = Object.create(device, {
    write: {
      value: async (offset: number, data: Uint8Array, options?: { fua?: boolean }) => {
        if (options?.fua) flushes++;
        await device.write(offset, data, options);
      },
    },
  });
  const unit = unitOver(counting);
  unit.attachNexus(NEXUS_A);
  unit.attachNexus(NEXUS_B);
  const all = await run(unit, [0x1a, 0, 0x3f, 0, 255, 0]);
  assert.equal(all.status, ScsiStatus.GOOD);
  assert.equal(all.data[0] + 1, all.data.length, 'mode data length');
  assert.equal(all.data[2] & 0x10, 0x10, 'DPOFUA');
  assert.equal(all.data[3], 8, 'one short block descriptor');
  const caching = all.data.subarray(12, 32);
  assert.equal(caching[0], 0x08);
  assert.equal(caching[2] & 0x04, 0x04, 'WCE: a volatile write cache');
  const control = all.data.subarray(32, 44);
  assert.equal(control[0], 0x0a);
  const ten = await run(unit, [0x5a, 0x10, 0x08, 0, 0, 0, 0, 0, 255, 0]);
  assert.equal(ten.data.readUInt16BE(6), 16, 'LLBAA gives a long block descriptor');
  const saved = await run(unit, [0x1a, 0, 0xc8, 0, 255, 0]);
  assert.equal(saved.additionalSense, AdditionalSense.SAVING_PARAMETERS_NOT_SUPPORTED);
  const changeable = await run(unit, [0x1a, 0x08, 0x48, 0, 255, 0]);
  assert.equal(changeable.data[4 + 2], 0x04, 'only WCE changes in the caching page');

  // Turn the write cache off: writes become FUA.
  const select = Buffer.concat([Buffer.from([0, 0, 0, 0]), Buffer.from(caching)]);
  select[4 + 2] &= ~0x04;
  assert.equal(
    (await run(unit, [0x15, 0x10, 0, 0, select.length, 0], { dataOut: select })).status,
    ScsiStatus.GOOD,
  );
  await run(unit, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(512) });
  assert.equal(flushes, 1);
  // The other nexus learns that mode parameters changed.
  const other = await run(unit, [0, 0, 0, 0, 0, 0], { nexus: NEXUS_B });
  assert.equal(other.senseKey, SenseKey.UNIT_ATTENTION);
  assert.equal(other.additionalSense, AdditionalSense.MODE_PARAMETERS_CHANGED);
  assert.equal(
    (await run(unit, [0, 0, 0, 0, 0, 0], { nexus: NEXUS_B })).status,
    ScsiStatus.GOOD,
    'reported once',
  );

  // D_SENSE: errors come back in descriptor format.
  const controlSelect = Buffer.concat([Buffer.from([0, 0, 0, 0]), Buffer.from(control)]);
  controlSelect[4 + 2] |= 0x04;
  assert.equal(
    (await run(unit, [0x15, 0x10, 0, 0, controlSelect.length, 0], { dataOut: controlSelect })).status,
    0,
  );
  const error = await run(unit, cdb10(0x28, 2 ** 31, 1));
  assert.equal(error.sense[0], 0x72);
  assert.equal(error.additionalSense, AdditionalSense.LBA_OUT_OF_RANGE);
  // Bits that cannot change are refused with a pointer into the parameter list.
  const bad = Buffer.from(controlSelect);
  bad[4 + 3] = 0x00;
  const refused = await run(unit, [0x15, 0x10, 0, 0, bad.length, 0], { dataOut: bad });
  assert.equal(refused.additionalSense, AdditionalSense.INVALID_FIELD_IN_PARAMETER_LIST);
  const savePages = await run(unit, [0x15, 0x11, 0, 0, bad.length, 0], { dataOut: bad });
  assert.equal(savePages.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('REPORT SUPPORTED OPERATION CODES lists every command, one command, and timeouts', async (t) => {
  const { unit } = storeUnit(t);
  const rsoc = (options: number, opcode = 0, serviceAction = 0, allocation = 8192): number[] => [
    0xa3,
    0x0c,
    options,
    opcode,
    serviceAction >> 8,
    serviceAction & 0xff,
    0,
    0,
    allocation >> 8,
    allocation & 0xff,
    0,
    0,
  ];
  const all = await run(unit, rsoc(0));
  const length = all.data.readUInt32BE(0);
  assert.equal(length % 8, 0);
  const opcodes = new Set<number>();
  for (let offset = 4; offset < 4 + length; offset += 8) opcodes.add(all.data[offset]);
  for (const opcode of [
    0x00, 0x12, 0x28, 0x2a, 0x35, 0x41, 0x42, 0x5e, 0x5f, 0x88, 0x89, 0x8a, 0x93, 0x9e, 0xa0, 0xa3,
  ]) {
    assert.ok(opcodes.has(opcode), `opcode 0x${opcode.toString(16)} listed`);
  }
  const withTimeouts = await run(unit, rsoc(0x80));
  assert.equal(withTimeouts.data.readUInt32BE(0) % 20, 0, '20-byte descriptors with timeouts');
  const one = await run(unit, rsoc(1, 0x28));
  assert.equal(one.data[1] & 0x07, 3, 'supported');
  assert.equal(one.data.readUInt16BE(2), 10);
  assert.deepEqual([...one.data.subarray(4, 6)], [0x28, 0xf8]);
  const absent = await run(unit, rsoc(1, 0xc5));
  assert.equal(absent.data[1] & 0x07, 1, 'not supported');
  const needsServiceAction = await run(unit, rsoc(1, 0x9e));
  assert.equal(needsServiceAction.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
  const withServiceAction = await run(unit, rsoc(2, 0x9e, 0x10));
  assert.equal(withServiceAction.data[1] & 0x07, 3);
  assert.equal(withServiceAction.data[5], 0x10);
  const badOption = await run(unit, rsoc(7));
  assert.equal(badOption.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('START STOP UNIT stops media access; REQUEST SENSE and TEST UNIT READY report it', async (t) => {
  const { unit } = storeUnit(t);
  assert.equal((await run(unit, [0x1b, 0, 0, 0, 0x00, 0])).status, ScsiStatus.GOOD);
  const stopped = await run(unit, [0, 0, 0, 0, 0, 0]);
  assert.equal(stopped.senseKey, SenseKey.NOT_READY);
  assert.equal((await run(unit, cdb10(0x28, 0, 1))).senseKey, SenseKey.NOT_READY);
  const sense = await run(unit, [0x03, 0, 0, 0, 252, 0]);
  assert.equal(sense.status, ScsiStatus.GOOD);
  assert.equal(sense.data[2] & 0x0f, SenseKey.NOT_READY);
  assert.equal((await run(unit, [0x1b, 0, 0, 0, 0x01, 0])).status, ScsiStatus.GOOD);
  assert.equal((await run(unit, cdb10(0x28, 0, 1))).status, ScsiStatus.GOOD);
  const eject = await run(unit, [0x1b, 0, 0, 0, 0x02, 0]);
  assert.equal(eject.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('a capacity change is a unit attention for every attached nexus', async (t) => {
  const { unit, store } = storeUnit(t, 4 * 1024 * 1024);
  unit.attachNexus(NEXUS_A);
  unit.attachNexus(NEXUS_B);
  assert.equal((await run(unit, [0, 0, 0, 0, 0, 0])).status, ScsiStatus.GOOD);
  store.expand(8 * 1024 * 1024);
  for (const nexus of [NEXUS_A, NEXUS_B]) {
    const first = await run(unit, [0, 0, 0, 0, 0, 0], { nexus });
    assert.equal(first.senseKey, SenseKey.UNIT_ATTENTION);
    assert.equal(first.additionalSense, AdditionalSense.CAPACITY_DATA_HAS_CHANGED);
  }
  const capacity = await run(unit, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(capacity.data.readUInt32BE(0), 16383);
  unit.detachNexus(NEXUS_B);
  assert.equal(unit.attachedNexusCount, 1);
});

function prout(
  serviceAction: number,
  type: number,
  key: bigint,
  serviceActionKey: bigint,
): { cdb: number[]; data: Buffer } {
  const data = Buffer.alloc(24);
  data.writeBigUInt64BE(key, 0);
  data.writeBigUInt64BE(serviceActionKey, 8);
  return { cdb: [0x5f, serviceAction, type, 0, 0, 0, 0, 0, 24, 0], data };
}

async function reserveOut(
  unit: ReturnType<typeof storeUnit>['unit'],
  nexus: typeof NEXUS_A,
  serviceAction: number,
  type: number,
  key: bigint,
  serviceActionKey = 0n,
): Promise<number> {
  const { cdb, data } = prout(serviceAction, type, key, serviceActionKey);
  return (await run(unit, cdb, { dataOut: data, nexus })).status;
}

test('persistent reservations: register, reserve, conflicts across nexuses, release, preempt, clear', async (t) => {
  const { unit } = storeUnit(t);
  unit.attachNexus(NEXUS_A);
  unit.attachNexus(NEXUS_B);
  const readKeys = async (): Promise<bigint[]> => {
    const outcome = await run(unit, [0x5e, 0, 0, 0, 0, 0, 0, 4, 0, 0], { nexus: NEXUS_B });
    const keys: bigint[] = [];
    for (let offset = 8; offset < 8 + outcome.data.readUInt32BE(4); offset += 8)
      keys.push(outcome.data.readBigUInt64BE(offset));
    return keys;
  };
  const write = (nexus: typeof NEXUS_A) =>
    run(unit, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(512), nexus });
  const read = (nexus: typeof NEXUS_A) => run(unit, cdb10(0x28, 0, 1), { nexus });

  assert.equal(await reserveOut(unit, NEXUS_A, 0, 0, 0n, 0xaan), ScsiStatus.GOOD);
  assert.equal(await reserveOut(unit, NEXUS_B, 0, 0, 0n, 0xbbn), ScsiStatus.GOOD);
  assert.deepEqual(await readKeys(), [0xaan, 0xbbn]);
  assert.equal(
    await reserveOut(unit, NEXUS_B, 0, 0, 0x99n, 0xccn),
    ScsiStatus.RESERVATION_CONFLICT,
    'wrong key',
  );
  // Write exclusive held by A: B may read, not write.
  assert.equal(await reserveOut(unit, NEXUS_A, 1, 1, 0xaan), ScsiStatus.GOOD);
  assert.equal((await write(NEXUS_A)).status, ScsiStatus.GOOD);
  assert.equal((await write(NEXUS_B)).status, ScsiStatus.RESERVATION_CONFLICT);
  assert.equal((await read(NEXUS_B)).status, ScsiStatus.GOOD);
  assert.equal(
    await reserveOut(unit, NEXUS_B, 1, 1, 0xbbn),
    ScsiStatus.RESERVATION_CONFLICT,
    'already reserved',
  );
  const reservation = await run(unit, [0x5e, 1, 0, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal(reservation.data.readUInt32BE(4), 16);
  assert.equal(reservation.data.readBigUInt64BE(8), 0xaan);
  assert.equal(reservation.data[21], 1);
  // Releasing with the wrong type is an error; with the right one it frees the unit.
  const wrongType = prout(2, 3, 0xaan, 0n);
  assert.equal(
    (await run(unit, wrongType.cdb, { dataOut: wrongType.data })).additionalSense,
    AdditionalSense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
  );
  assert.equal(await reserveOut(unit, NEXUS_A, 2, 1, 0xaan), ScsiStatus.GOOD);
  assert.equal((await write(NEXUS_B)).status, ScsiStatus.GOOD);
  // Exclusive access by A: B can do neither; then B preempts A.
  assert.equal(await reserveOut(unit, NEXUS_A, 1, 3, 0xaan), ScsiStatus.GOOD);
  assert.equal((await read(NEXUS_B)).status, ScsiStatus.RESERVATION_CONFLICT);
  assert.equal(await reserveOut(unit, NEXUS_B, 4, 3, 0xbbn, 0xaan), ScsiStatus.GOOD);
  assert.deepEqual(await readKeys(), [0xbbn]);
  const preempted = await read(NEXUS_A);
  assert.equal(preempted.senseKey, SenseKey.UNIT_ATTENTION, 'A learns it was preempted');
  assert.equal(preempted.additionalSense, AdditionalSense.REGISTRATIONS_PREEMPTED);
  assert.equal((await read(NEXUS_A)).status, ScsiStatus.RESERVATION_CONFLICT);
  assert.equal((await read(NEXUS_B)).status, ScsiStatus.GOOD);
  // Registrants-only: every registrant may write.
  assert.equal(await reserveOut(unit, NEXUS_A, 6, 0, 0n, 0xa2n), ScsiStatus.GOOD);
  assert.equal(await reserveOut(unit, NEXUS_B, 2, 3, 0xbbn), ScsiStatus.GOOD);
  assert.equal(await reserveOut(unit, NEXUS_B, 1, 5, 0xbbn), ScsiStatus.GOOD);
  assert.equal((await write(NEXUS_A)).status, ScsiStatus.GOOD);
  // CLEAR removes everything.
  assert.equal(await reserveOut(unit, NEXUS_B, 3, 0, 0xbbn), ScsiStatus.GOOD);
  assert.deepEqual(await readKeys(), []);
  const cleared = await run(unit, [0, 0, 0, 0, 0, 0], { nexus: NEXUS_A });
  assert.equal(cleared.additionalSense, AdditionalSense.RESERVATIONS_PREEMPTED, 'A learns of the CLEAR');
  assert.equal((await run(unit, [0x5e, 1, 0, 0, 0, 0, 0, 0, 64, 0])).data.readUInt32BE(4), 0);
  // Capabilities and full status.
  const capabilities = await run(unit, [0x5e, 2, 0, 0, 0, 0, 0, 0, 8, 0]);
  assert.equal(capabilities.data.readUInt16BE(0), 8);
  assert.equal(capabilities.data[3] & 0x80, 0x80, 'TMV');
  assert.equal(await reserveOut(unit, NEXUS_A, 0, 0, 0n, 0x11n), ScsiStatus.GOOD);
  const full = await run(unit, [0x5e, 3, 0, 0, 0, 0, 0, 2, 0, 0]);
  assert.equal(full.data.readBigUInt64BE(8), 0x11n);
  const transportId = full.data.subarray(32, 32 + full.data.readUInt32BE(28));
  assert.equal(transportId[0], 0x45, 'iSCSI TransportID, initiator port format');
  assert.match(transportId.subarray(4).toString(), /^iqn\.2026-11\.test:a,i,0x800000000001/);
  const badAction = await run(unit, [0x5e, 9, 0, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal(badAction.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
  const badLength = await run(unit, [0x5f, 0, 0, 0, 0, 0, 0, 0, 20, 0], { dataOut: Buffer.alloc(20) });
  assert.equal(badLength.additionalSense, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR);
});
