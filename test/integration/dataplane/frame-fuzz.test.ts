import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { Engine } from '../../../src/dataplane/engine/engine.ts';
import { encodeHeader, FRAME_HEADER_BYTES, FRAME_MAGIC, Op } from '../../../src/dataplane/protocol/frame.ts';
import { ReplicaServer } from '../../../src/dataplane/replica/replica-server.ts';
import { silentLogger } from '../../../src/logging.ts';
import { checksumOf } from '../../../src/storage/checksum.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { controlClient, startHornbill } from '../../helpers/processes.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

/**
 * Malformed frames (issue 3, must-hold 5): never a crash, never a change to stored data.
 * Frames are generated: bad magic, bad header checksums, unknown ops, truncations, huge
 * claimed lengths, and well-formed headers with garbage payloads (writes whose checksums do
 * not match, control requests that are not JSON, layer operations on missing layers).
 */

const RUNS = Number(process.env.HORNBILL_FUZZ_RUNS ?? 1000);

/** A frame header with chosen fields, optionally sealed with a correct checksum. */
function header(
  fields: { op: number; sequence: number; offset: number; length: number; payload: number; flags: number },
  seal: boolean,
): Buffer {
  const frame = Buffer.alloc(FRAME_HEADER_BYTES);
  encodeHeader(frame, 0, {
    op: Op.PING,
    sequence: fields.sequence,
    offsetBytes: fields.offset,
    lengthBytes: fields.length,
    payloadLength: fields.payload,
    flags: fields.flags,
  });
  frame.writeUInt8(fields.op, 3);
  if (seal) frame.writeUInt32LE(checksumOf(frame.subarray(0, 28)), 28);
  return frame;
}

const frames = fc.oneof(
  // Random bytes.
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  // A sealed header with any op (including unknown and response ops) and a payload that may be short.
  fc
    .record({
      op: fc.oneof(
        fc.constantFrom(
          Op.READ,
          Op.WRITE,
          Op.FLUSH,
          Op.PING,
          Op.CONTROL,
          Op.LAYER_EXTENTS,
          Op.READ_LAYER,
          Op.WRITE_LAYER,
          Op.OK,
          Op.ERROR,
        ),
        fc.integer({ min: 0, max: 255 }),
      ),
      sequence: fc.nat(),
      offset: fc.oneof(fc.constant(0), fc.nat(1 << 30), fc.integer({ min: 0, max: 2 ** 52 })),
      length: fc.oneof(fc.constant(4096), fc.nat(1 << 27)),
      payload: fc.oneof(fc.nat(512), fc.constant(0xffff_ffff), fc.nat(70 * 1024 * 1024)),
      flags: fc.nat(),
      body: fc.uint8Array({ maxLength: 600 }),
      seal: fc.boolean(),
      magic: fc.boolean(),
    })
    .map((spec) => {
      const head = header(spec, spec.seal);
      if (!spec.magic) head.writeUInt16LE(FRAME_MAGIC ^ 0x0101, 0);
      return Buffer.concat([
        head,
        Buffer.from(spec.body).subarray(0, Math.min(spec.body.length, spec.payload)),
      ]);
    }),
  // Well-formed control requests with hostile content.
  fc
    .oneof(
      fc.string(),
      fc.json(),
      fc.constantFrom(
        '{"method":"revert","params":{"name":"../../etc"}}',
        '{"method":"deleteLayerNow","params":{"name":"x"}}',
        '{"method":"setRevisionCounter","params":{"revisionCounter":-1}}',
        '{"method":"createLayer","params":{"name":"a/b","parent":null}}',
        '{"method":"expand","params":{"sizeBytes":1}}',
        '{"method":"snapshot"}',
        '{"method":"hashSnapshot","params":{"name":7}}',
        '{"method":"mappingStatus","params":{"offsetBytes":-4096,"lengthBytes":4096}}',
        '{"method":"__proto__","params":{}}',
      ),
    )
    .map((text) => {
      const body = Buffer.from(text);
      return Buffer.concat([
        header({ op: Op.CONTROL, sequence: 1, offset: 0, length: 0, payload: body.length, flags: 0 }, true),
        body,
      ]);
    }),
);

/** Sends one input on a fresh connection, reads what comes back for a moment, closes. */
async function poke(port: number, input: Buffer): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => {
      socket.write(input);
      setTimeout(done, 5);
    });
  });
}

test(`${RUNS} malformed frames neither crash a replica process nor change its data`, async (t) => {
  const root = tempDirectory(t);
  const replica = await startHornbill(t, [
    'replica',
    '--dir',
    path.join(root, 'r'),
    '--size',
    '16Mi',
    '--listen',
    '127.0.0.1:0',
  ]);
  const port = replica.ready.port as number;
  let client = await controlClient(t, port);
  await client.write(0, patternBytes(1, 1024 * 1024), checksumSection(patternBytes(1, 1024 * 1024)), 0);
  await client.control('snapshot', { name: 'before' });
  const before = (await client.control<{ hash: string }>('hashSnapshot', { name: 'before' })).hash;
  client.close();
  await fc.assert(
    fc.asyncProperty(frames, async (input) => {
      await poke(port, input);
    }),
    { numRuns: RUNS },
  );
  assert.equal(replica.child.exitCode, null, `the replica exited:\n${replica.stderr()}`);
  client = await controlClient(t, port);
  const info = await client.control<{ revisionCounter: number; chain: { name: string }[] }>('info');
  assert.equal(info.revisionCounter, 1, 'no fuzzed request was applied as a write');
  assert.deepEqual(
    info.chain.map((layer) => layer.name),
    ['before', 'volume-head'],
  );
  assert.equal((await client.control<{ hash: string }>('hashSnapshot', { name: 'before' })).hash, before);
  const data = Buffer.alloc(1024 * 1024);
  await client.read(0, data);
  assert.ok(data.equals(patternBytes(1, 1024 * 1024)));
  assert.match(replica.stderr(), /malformed frame/);
});

test(`${RUNS} malformed frames do not crash an engine's control port`, async (t) => {
  const root = tempDirectory(t);
  const replica = await startHornbill(t, [
    'replica',
    '--dir',
    path.join(root, 'r'),
    '--size',
    '16Mi',
    '--listen',
    '127.0.0.1:0',
  ]);
  const engine = await startHornbill(t, [
    'engine',
    '--name',
    'fuzz',
    '--size',
    '16Mi',
    '--replica',
    `127.0.0.1:${replica.ready.port}`,
    '--frontend',
    'none',
    '--control',
    '127.0.0.1:0',
  ]);
  const port = engine.ready.control.port as number;
  await fc.assert(
    fc.asyncProperty(frames, (input) => poke(port, input)),
    { numRuns: RUNS },
  );
  assert.equal(engine.child.exitCode, null, `the engine exited:\n${engine.stderr()}`);
  const control = await controlClient(t, port);
  const status = await control.control<{ robustness: string }>('status');
  assert.equal(status.robustness, 'healthy');
});

test('an engine survives a replica that answers with garbage: the replica goes ERR, I/O goes on', async (t) => {
  const root = tempDirectory(t);
  const stores = [0, 1].map((index) =>
    ReplicaStore.create(path.join(root, `r${index}`), { sizeBytes: 16 * 1024 * 1024 }),
  );
  defer(t, () => {
    for (const store of stores) store.close();
  });
  const servers = stores.map(
    (store) => new ReplicaServer({ store, host: '127.0.0.1', port: 0, log: silentLogger }),
  );
  const addresses = await Promise.all(servers.map((server) => server.listen()));
  defer(t, () => {
    for (const server of servers) void server.close();
  });
  // The evil replica answers "info" correctly, then every later request with a frame whose
  // header is sealed but whose payload is garbage, or with random bytes.
  let evilConnections = 0;
  const evil = net.createServer((socket) => {
    evilConnections++;
    let answered = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      const sequence = chunk.readUInt32LE(4);
      if (answered++ === 0) {
        const info = Buffer.from(
          JSON.stringify({ sizeBytes: 16 * 1024 * 1024, revisionCounter: 0, rebuilding: false, chain: [] }),
        );
        socket.write(
          Buffer.concat([
            header({ op: Op.OK, sequence, offset: 0, length: 0, payload: info.length, flags: 0 }, true),
            info,
          ]),
        );
      } else if (answered % 2 === 0) {
        socket.write(
          Buffer.concat([
            header({ op: Op.OK, sequence, offset: 0, length: 0, payload: 8, flags: 0 }, true),
            Buffer.alloc(8, 0xee),
          ]),
        );
      } else {
        socket.write(patternBytes(answered, 64));
      }
    });
  });
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', () => resolve()));
  defer(t, () => evil.close());
  const engine = await Engine.start({
    name: 'evil',
    replicas: [...addresses, evil.address() as net.AddressInfo].map((address) => ({
      address: { host: '127.0.0.1', port: address.port },
    })),
    log: silentLogger,
  });
  defer(t, () => void engine.close());
  assert.equal(engine.robustness, 'healthy');
  for (let index = 0; index < 20; index++) {
    const data = patternBytes(index, 8192);
    await engine.write(index * 8192, data);
    const back = Buffer.alloc(8192);
    await engine.read(index * 8192, back);
    assert.ok(back.equals(data));
  }
  assert.deepEqual(
    engine.status().map((replica) => replica.mode),
    ['RW', 'RW', 'ERR'],
  );
  assert.ok(evilConnections >= 1);
});

function checksumSection(data: Buffer): Buffer {
  const section = Buffer.alloc((data.length / 4096) * 4);
  for (let block = 0; block < data.length / 4096; block++) {
    section.writeUInt32LE(checksumOf(data.subarray(block * 4096, (block + 1) * 4096)), block * 4);
  }
  return section;
}
