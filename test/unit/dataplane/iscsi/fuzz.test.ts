import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { IscsiInitiator } from '../../../../src/dataplane/iscsi/initiator/initiator.ts';
import { Flag, Opcode, PduHeader, RejectReason } from '../../../../src/dataplane/iscsi/pdu.ts';
import { encodeTextKeys } from '../../../../src/dataplane/iscsi/text.ts';
import { patternBytes } from '../../../helpers/temp.ts';
import { RawClient, type RawPdu } from './raw-client.ts';
import { eventually, liveTarget } from './target-harness.ts';

/**
 * Must-hold 2: 1,000+ malformed PDUs against a live target. Each case opens a connection
 * (logging in first when the case is about full feature phase), sends its malformed PDU and
 * checks the answer the RFC asks for: a Reject with the right reason while the connection
 * stays usable, a login failure, or a closed connection. Afterwards the target still serves
 * a fresh session, the volume's bytes are unchanged, and the target holds no socket.
 */

const MAX_RECV = 262144;
const VOLUME_BYTES = 8 * 1024 * 1024;

/** Opcodes that could change stored data or unit state; random CDBs never use them. */
const MUTATING_OPCODES = new Set([
  0x04, 0x0a, 0x15, 0x1b, 0x2a, 0x2e, 0x3b, 0x41, 0x42, 0x55, 0x5f, 0x89, 0x8a, 0x8e, 0x93, 0x9c, 0xaa, 0xae,
  0x48,
]);
const INITIATOR_OPCODES = new Set([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10]);

type Expect =
  | { kind: 'closed' }
  | { kind: 'reject-alive'; reason: number }
  | { kind: 'answered-alive' }
  | { kind: 'login-failure' };

interface FuzzCase {
  name: string;
  loggedIn: boolean;
  digests: boolean;
  /** Builds the bytes to send once the connection is ready. */
  build(client: RawClient): Buffer[];
  expect: Expect;
  /** End our side after sending (truncated input would otherwise wait for more bytes). */
  endAfter?: boolean;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });

function header(opcode: number, flags: number, tag: number): PduHeader {
  const pdu = new PduHeader();
  pdu.opcode = opcode;
  pdu.flags = flags;
  pdu.initiatorTaskTag = tag;
  return pdu;
}

function loginHeader(flags: number, versionMin = 0): PduHeader {
  const pdu = header(Opcode.LOGIN_REQUEST, flags, 1);
  pdu.immediate = true;
  pdu.byte3 = versionMin;
  pdu.bytes.set([0x80, 0, 1, 2, 3, 4], 8);
  return pdu;
}

const LOGIN_KEYS = encodeTextKeys([
  ['InitiatorName', 'iqn.2026-11.io.hornbill:fuzz'],
  ['SessionType', 'Normal'],
  ['TargetName', 'iqn.2026-11.io.hornbill:volume'],
  ['AuthMethod', 'None'],
]);

const preLogin: fc.Arbitrary<FuzzCase>[] = [
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => ({
    name: 'random bytes before login',
    loggedIn: false,
    digests: false,
    build: () => [Buffer.from(bytes)],
    expect: { kind: 'closed' },
    endAfter: true,
  })),
  fc.integer({ min: 1, max: 47 }).map((cut) => ({
    name: 'truncated login header',
    loggedIn: false,
    digests: false,
    build: (client: RawClient) => [client.encode(loginHeader(0x87), LOGIN_KEYS).subarray(0, cut)],
    expect: { kind: 'closed' },
    endAfter: true,
  })),
  fc.constantFrom(0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x10, 0x3f).map((opcode) => ({
    name: 'login in the wrong phase (non-login PDU first)',
    loggedIn: false,
    digests: false,
    build: (client: RawClient) => [client.encode(header(opcode, Flag.FINAL, 7))],
    expect: { kind: 'closed' },
  })),
  fc
    .record({
      versionMin: fc.integer({ min: 1, max: 255 }),
      stage: fc.constantFrom(0xc7, 0x8b, 0x8e, 0x86, 0x84),
    })
    .map(({ versionMin, stage }) => ({
      name: 'login with a bad version, stage or T+C',
      loggedIn: false,
      digests: false,
      build: (client: RawClient) => [
        client.encode(loginHeader(stage, stage === 0xc7 ? 0 : versionMin), LOGIN_KEYS),
      ],
      expect: { kind: 'login-failure' },
    })),
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((garbage) => ({
    name: 'login with garbage keys',
    loggedIn: false,
    digests: false,
    build: (client: RawClient) => [
      client.encode(loginHeader(0x87), Buffer.concat([Buffer.from('=x\0'), Buffer.from(garbage)])),
    ],
    expect: { kind: 'login-failure' },
  })),
  fc.integer({ min: 8193, max: 0xffffff }).map((length) => ({
    name: 'login data segment longer than 8192',
    loggedIn: false,
    digests: false,
    build: () => {
      const bytes = Buffer.from(loginHeader(0x87).bytes);
      bytes.writeUIntBE(length, 5, 3);
      return [bytes];
    },
    expect: { kind: 'closed' },
    endAfter: true,
  })),
];

const fullFeature: fc.Arbitrary<FuzzCase>[] = [
  fc
    .record({
      opcode: fc.integer({ min: 0, max: 0x3f }).filter((opcode) => !INITIATOR_OPCODES.has(opcode)),
      digests: fc.boolean(),
    })
    .map(({ opcode, digests }) => ({
      name: 'unknown opcode',
      loggedIn: true,
      digests,
      build: (client: RawClient) => [client.encode(header(opcode, Flag.FINAL, client.tag()))],
      expect: { kind: 'reject-alive', reason: RejectReason.COMMAND_NOT_SUPPORTED },
    })),
  fc
    .record({ length: fc.integer({ min: MAX_RECV + 1, max: 0xffffff }), digests: fc.boolean() })
    .map(({ length, digests }) => ({
      name: 'data segment longer than MaxRecvDataSegmentLength',
      loggedIn: true,
      digests,
      build: (client: RawClient) => {
        const bytes = client.encode(header(Opcode.NOP_OUT, Flag.FINAL, client.tag()));
        bytes.writeUIntBE(length, 5, 3);
        return [bytes];
      },
      expect: { kind: 'closed' },
      endAfter: true,
    })),
  fc.record({ bit: fc.integer({ min: 0, max: 48 * 8 + 31 }) }).map(({ bit }) => ({
    name: 'header digest mismatch',
    loggedIn: true,
    digests: true,
    build: (client: RawClient) => {
      const pdu = header(Opcode.NOP_OUT, Flag.FINAL, client.tag());
      pdu.immediate = true;
      const bytes = client.encode(pdu);
      bytes[48 + ((bit % 32) >> 3)] ^= 1 << (bit & 7); // corrupt the digest itself
      return [bytes];
    },
    expect: { kind: 'closed' },
  })),
  fc.record({ blocks: fc.integer({ min: 1, max: 64 }), flip: fc.nat() }).map(({ blocks, flip }) => ({
    name: 'data digest mismatch on a WRITE with immediate data',
    loggedIn: true,
    digests: true,
    build: (client: RawClient) => {
      const bytes = Buffer.alloc(blocks * 512, 0xee);
      const command = client.scsiCommand([0x2a, 0, 0, 0, 0, 0, 0, 0, blocks, 0], {
        write: true,
        length: bytes.length,
      });
      const encoded = client.encode(command, bytes);
      encoded[52 + (flip % bytes.length)] ^= 0x40; // a data byte: the data digest no longer matches
      return [encoded];
    },
    expect: { kind: 'closed' },
  })),
  fc
    .record({
      offset: fc.integer({ min: 0, max: 1 << 22 }),
      length: fc.integer({ min: 512, max: 8192 }),
      dataSN: u32,
      digests: fc.boolean(),
    })
    .map(({ offset, length, dataSN, digests }) => ({
      name: 'Data-Out beyond the burst limits, the EDTL, or out of sequence',
      loggedIn: true,
      digests,
      build: (client: RawClient) => {
        // A 1-block WRITE that announces unsolicited data, then Data-Out that does not fit it.
        const command = client.scsiCommand([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], {
          write: true,
          final: false,
          length: 512,
        });
        const data = header(Opcode.DATA_OUT, Flag.FINAL, command.initiatorTaskTag);
        data.targetTransferTag = 0xffffffff;
        data.bufferOffset = offset === 0 && dataSN === 0 ? 4096 : offset;
        data.dataSN = dataSN;
        return [client.encode(command), client.encode(data, Buffer.alloc(length, 0xdd))];
      },
      expect: { kind: 'closed' },
    })),
  fc
    .record({ extra: fc.integer({ min: 1, max: 4096 }), digests: fc.boolean() })
    .map(({ extra, digests }) => ({
      name: 'immediate data beyond FirstBurstLength',
      loggedIn: true,
      digests,
      build: (client: RawClient) => {
        const bytes = Buffer.alloc(262144 + extra, 0xcc);
        const blocks = Math.ceil(bytes.length / 512);
        const command = client.scsiCommand([0x2a, 0, 0, 0, 0, 0, 0, blocks >> 8, blocks & 0xff, 0], {
          write: true,
          length: blocks * 512,
        });
        return [client.encode(command, bytes)];
      },
      expect: { kind: 'closed' },
    })),
  fc.boolean().map((digests) => ({
    name: 'Login Request in full feature phase',
    loggedIn: true,
    digests,
    build: (client: RawClient) => [client.encode(loginHeader(0x87), LOGIN_KEYS)],
    expect: { kind: 'reject-alive', reason: RejectReason.PROTOCOL_ERROR },
  })),
  fc.record({ digests: fc.boolean(), tag: u32 }).map(({ digests, tag }) => ({
    name: 'SNACK at ErrorRecoveryLevel 0',
    loggedIn: true,
    digests,
    build: (client: RawClient) => {
      const snack = header(Opcode.SNACK_REQUEST, Flag.FINAL, client.tag());
      snack.targetTransferTag = tag;
      return [client.encode(snack)];
    },
    expect: { kind: 'reject-alive', reason: RejectReason.PROTOCOL_ERROR },
  })),
  fc
    .record({
      taskFunction: fc.integer({ min: 0, max: 127 }),
      referenced: u32,
      lun: fc.integer({ min: 0, max: 3 }),
      digests: fc.boolean(),
    })
    .map(({ taskFunction, referenced, lun, digests }) => ({
      name: 'task management with random function and tags',
      loggedIn: true,
      digests,
      build: (client: RawClient) => {
        const tmf = header(Opcode.TASK_MANAGEMENT_REQUEST, Flag.FINAL | taskFunction, client.tag());
        tmf.immediate = true;
        tmf.lun = lun;
        tmf.targetTransferTag = referenced;
        tmf.cmdSN = client.cmdSN;
        return [client.encode(tmf)];
      },
      expect: { kind: 'answered-alive' },
    })),
  fc
    .record({
      cdb: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      lun: fc.integer({ min: 0, max: 2 }),
      length: fc.integer({ min: 0, max: 1 << 20 }),
      digests: fc.boolean(),
    })
    .filter(({ cdb }) => !MUTATING_OPCODES.has(cdb[0]))
    .map(({ cdb, lun, length, digests }) => ({
      name: 'random CDB (not a write)',
      loggedIn: true,
      digests,
      build: (client: RawClient) => {
        const command = client.scsiCommand([...cdb], { read: true, length });
        command.lun = lun;
        return [client.encode(command)];
      },
      expect: { kind: 'answered-alive' },
    })),
  fc
    .record({ reason: fc.integer({ min: 3, max: 127 }), digests: fc.boolean() })
    .map(({ reason, digests }) => ({
      name: 'logout with an invalid reason',
      loggedIn: true,
      digests,
      build: (client: RawClient) => {
        const logout = header(Opcode.LOGOUT_REQUEST, Flag.FINAL | reason, client.tag());
        logout.immediate = true;
        logout.cmdSN = client.cmdSN;
        return [client.encode(logout)];
      },
      expect: { kind: 'reject-alive', reason: RejectReason.INVALID_PDU_FIELD },
    })),
  fc.boolean().map((digests) => ({
    name: 'NOP-Out without ITT that is not immediate',
    loggedIn: true,
    digests,
    build: (client: RawClient) => {
      const nop = header(Opcode.NOP_OUT, Flag.FINAL, 0xffffffff);
      nop.targetTransferTag = 0xffffffff;
      return [client.encode(nop)];
    },
    expect: { kind: 'reject-alive', reason: RejectReason.PROTOCOL_ERROR },
  })),
];

/** Sends a NOP-Out ping and reads until its NOP-In; returns the PDUs seen before it, or null if closed. */
async function pingThrough(client: RawClient): Promise<RawPdu[] | null> {
  const ping = header(Opcode.NOP_OUT, Flag.FINAL, 0x7ffffff0);
  ping.immediate = true;
  ping.targetTransferTag = 0xffffffff;
  ping.cmdSN = client.cmdSN;
  client.send(ping);
  const seen: RawPdu[] = [];
  for (;;) {
    const pdu = await client.read(5000);
    if (pdu === null) return null;
    if (pdu.header.opcode === Opcode.NOP_IN && pdu.header.initiatorTaskTag === 0x7ffffff0) return seen;
    seen.push(pdu);
  }
}

async function runCase(port: number, fuzzCase: FuzzCase): Promise<void> {
  const client = await RawClient.connect(port);
  try {
    if (fuzzCase.loggedIn) {
      await client.login(
        'iqn.2026-11.io.hornbill:volume',
        fuzzCase.digests
          ? [
              ['HeaderDigest', 'CRC32C'],
              ['DataDigest', 'CRC32C'],
            ]
          : [],
      );
    }
    for (const bytes of fuzzCase.build(client)) client.write(bytes);
    if (fuzzCase.endAfter) client.socket.end();
    const expect = fuzzCase.expect;
    if (expect.kind === 'closed') {
      // Anything the target says before closing must be a Reject.
      for (;;) {
        const pdu = await client.read(5000);
        if (pdu === null) break;
        assert.equal(
          pdu.header.opcode,
          Opcode.REJECT,
          `${fuzzCase.name}: only a Reject may precede the close`,
        );
      }
      assert.equal(client.closed, true, `${fuzzCase.name}: the target closes the connection`);
    } else if (expect.kind === 'login-failure') {
      const pdu = await client.read(5000);
      assert.ok(pdu !== null, `${fuzzCase.name}: a login response`);
      assert.equal(pdu.header.opcode, Opcode.LOGIN_RESPONSE);
      assert.ok(
        pdu.header.loginStatus >= 0x0200,
        `${fuzzCase.name}: status 0x${pdu.header.loginStatus.toString(16)}`,
      );
      assert.equal(await client.waitClosed(), true, `${fuzzCase.name}: closed after the login failure`);
    } else {
      const seen = await pingThrough(client);
      assert.ok(seen !== null, `${fuzzCase.name}: the connection stays usable`);
      if (expect.kind === 'reject-alive') {
        assert.equal(seen.length, 1, `${fuzzCase.name}: one answer`);
        assert.equal(seen[0].header.opcode, Opcode.REJECT);
        assert.equal(seen[0].header.byte2, expect.reason, fuzzCase.name);
      } else {
        assert.equal(seen.length, 1, `${fuzzCase.name}: one answer`);
        assert.ok(
          [Opcode.SCSI_RESPONSE, Opcode.DATA_IN, Opcode.TASK_MANAGEMENT_RESPONSE].includes(
            seen[0].header.opcode as never,
          ),
        );
      }
    }
  } finally {
    client.destroy();
  }
}

test('1,100 malformed PDUs: right reject or closed connection; target up, data unchanged, no sockets left', {
  timeout: 180_000,
}, async (t) => {
  const live = await liveTarget(t, {
    sizeBytes: VOLUME_BYTES,
    maxRecvDataSegmentLength: MAX_RECV,
    firstBurstLength: 262144,
  });
  live.store.write(0, patternBytes(2026, VOLUME_BYTES));
  live.store.flush();
  const hashBefore = createHash('sha256');
  const snapshot = Buffer.alloc(VOLUME_BYTES);
  live.store.read(0, snapshot);
  hashBefore.update(snapshot);
  const digestBefore = hashBefore.digest('hex');

  const counts = new Map<string, number>();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.oneof(...preLogin, ...fullFeature), async (fuzzCase) => {
      runs++;
      counts.set(fuzzCase.name, (counts.get(fuzzCase.name) ?? 0) + 1);
      await runCase(live.port, fuzzCase);
    }),
    { numRuns: 1100, seed: Number(process.env.HORNBILL_FUZZ_SEED ?? 7143), endOnFailure: true },
  );
  assert.equal(runs, 1100);
  t.diagnostic(`cases: ${JSON.stringify(Object.fromEntries(counts))}`);
  assert.ok(counts.size >= 15, `every kind of malformed PDU was sent (${counts.size} kinds)`);

  // No sockets, sessions, locks or nexuses left on the target side.
  assert.ok(
    await eventually(() => live.target.connectionCount === 0, 10000),
    `open: ${live.target.connectionCount}`,
  );
  assert.equal(live.target.sessionCount, 0);
  const unit = live.target.findVolume(live.targetName)!.unit;
  assert.equal(unit.locks.heldCount, 0);
  assert.equal(unit.attachedNexusCount, 0);
  assert.equal(live.target.counters.accepted, live.target.counters.closed);
  assert.ok(
    live.logs.some((entry) => entry.message === 'connection closed' && typeof entry.reason === 'string'),
  );

  // The target still serves, and the volume is byte-identical.
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port: live.port,
    targetName: live.targetName,
  });
  const hashAfter = createHash('sha256');
  const chunk = Buffer.alloc(1024 * 1024);
  for (let offset = 0; offset < VOLUME_BYTES; offset += chunk.length) {
    await initiator.read(offset / 512, chunk);
    hashAfter.update(chunk);
  }
  await initiator.logout();
  assert.equal(hashAfter.digest('hex'), digestBefore, 'the volume data did not change');
});
