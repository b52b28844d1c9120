import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import type { IoRequest } from '../../../src/bench/connection.ts';
import { NbdClient } from '../../../src/bench/nbd-client.ts';
import {
  Command,
  INIT_MAGIC,
  OPTION_MAGIC,
  OPTION_REPLY_MAGIC,
  Option,
  Reply,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
} from '../../../src/dataplane/nbd/protocol.ts';
import type { HornbillError } from '../../../src/errors.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { patternBytes } from '../../helpers/temp.ts';
import { startServer } from '../dataplane/nbd/fixture.ts';

/** Submits through the callback API and resolves with the error (null on success). */
function io(client: NbdClient, write: boolean, offset: number, data: Buffer): Promise<HornbillError | null> {
  return new Promise((resolve) => {
    const request: IoRequest = { transportState: null, complete: (error) => resolve(error) };
    if (write) client.write(offset, data, request);
    else client.read(offset, data, request);
  });
}

describe("hornbill bench NBD client against Hornbill's NBD server", () => {
  test('pipelined writes and reads round-trip; structured replies are used', async (t) => {
    const fixture = await startServer(t, { sizeBytes: 16 * 1024 * 1024, name: 'vol' });
    const client = await NbdClient.open({ host: '127.0.0.1', port: fixture.port, exportName: 'vol' }, 32);
    t.after(() => client.close());
    assert.equal(client.sizeBytes, 16 * 1024 * 1024);
    assert.equal(client.structuredReplies, true);
    assert.equal(client.blockBytes, 512);
    const blocks = Array.from({ length: 32 }, (_, index) => patternBytes(index + 1, 65536));
    const writes = await Promise.all(blocks.map((data, index) => io(client, true, index * 65536, data)));
    assert.deepEqual(
      writes,
      blocks.map(() => null),
    );
    assert.equal(client.inFlight, 0);
    const targets = blocks.map(() => Buffer.alloc(65536, 0xff));
    const reads = await Promise.all(targets.map((target, index) => io(client, false, index * 65536, target)));
    assert.deepEqual(
      reads,
      blocks.map(() => null),
    );
    for (const [index, target] of targets.entries())
      assert.ok(target.equals(blocks[index]), `block ${index}`);
    // Never-written space reads as zeros (the server may answer with a hole chunk).
    const hole = Buffer.alloc(8192, 0xff);
    assert.equal(await io(client, false, 8 * 1024 * 1024, hole), null);
    assert.ok(hole.equals(Buffer.alloc(8192)));
    assert.ok(fixture.readAll().subarray(0, 65536).equals(blocks[0]), 'the data is in the store');
  });

  test('an error reply fails that request only, with its NBD error; the connection keeps working', async (t) => {
    const fixture = await startServer(t, { sizeBytes: 1024 * 1024, name: 'vol' });
    const client = await NbdClient.open({ host: '127.0.0.1', port: fixture.port, exportName: 'vol' }, 4);
    t.after(() => client.close());
    const error = await io(client, false, 1024 * 1024, Buffer.alloc(4096));
    assert.ok(isHornbillError(error, 'BENCH_NBD_IO_ERROR'));
    assert.equal(error.details.errno, 22);
    assert.match(error.message, /READ at offset 1048576 failed with error 22/);
    assert.equal(await io(client, true, 0, Buffer.alloc(4096, 1)), null);
  });

  test('an unknown export is a handshake error naming it', async (t) => {
    const fixture = await startServer(t, { name: 'vol' });
    await assert.rejects(
      NbdClient.open({ host: '127.0.0.1', port: fixture.port, exportName: 'nope' }, 4),
      (error) => isHornbillError(error, 'BENCH_NBD_HANDSHAKE_FAILED') && /"nope" refused/.test(error.message),
    );
    await assert.rejects(NbdClient.open({ host: '127.0.0.1', port: 1, exportName: 'x' }, 4), (error) =>
      isHornbillError(error, 'BENCH_NBD_HANDSHAKE_FAILED'),
    );
  });
});

/**
 * A scripted NBD server: fixed newstyle handshake (structured replies on or off), then it
 * answers each READ of `length` bytes at `offset` with the data `content(offset, length)`
 * gives, as structured chunks (a data chunk for the first half, a hole for the rest, then
 * NONE with DONE) or a simple reply, written a few bytes at a time so that the client
 * sees replies cut everywhere. A READ at offset 4096 gets an error chunk with a message.
 */
async function scriptedServer(
  t: TestContext,
  options: {
    structured: boolean;
    content: (offset: number, length: number) => Buffer;
    misbehave?: 'unknown-handle';
  },
): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    void serve(socket, options).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as net.AddressInfo).port;
}

async function serve(
  socket: net.Socket,
  options: {
    structured: boolean;
    content: (offset: number, length: number) => Buffer;
    misbehave?: 'unknown-handle';
  },
): Promise<void> {
  let buffered = Buffer.alloc(0);
  let waiting: (() => void) | null = null;
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    waiting?.();
  });
  const read = async (bytes: number) => {
    while (buffered.length < bytes) await new Promise<void>((resolve) => (waiting = resolve));
    const out = buffered.subarray(0, bytes);
    buffered = buffered.subarray(bytes);
    return out;
  };
  const trickle = async (data: Buffer) => {
    for (let position = 0; position < data.length; ) {
      const piece = 1 + ((position * 7) % 5);
      socket.write(data.subarray(position, position + piece));
      position += piece;
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const greeting = Buffer.alloc(18);
  greeting.writeBigUInt64BE(INIT_MAGIC, 0);
  greeting.writeBigUInt64BE(OPTION_MAGIC, 8);
  greeting.writeUInt16BE(3, 16);
  socket.write(greeting);
  await read(4);
  const optionReply = (option: number, type: number, data: Buffer) => {
    const header = Buffer.alloc(20);
    header.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(type, 12);
    header.writeUInt32BE(data.length, 16);
    socket.write(Buffer.concat([header, data]));
  };
  for (;;) {
    const header = await read(16);
    const option = header.readUInt32BE(8);
    await read(header.readUInt32BE(12));
    if (option === Option.STRUCTURED_REPLY) {
      optionReply(option, options.structured ? Reply.ACK : Reply.ERR_UNSUP, Buffer.alloc(0));
    } else if (option === Option.GO) {
      const info = Buffer.alloc(12);
      info.writeUInt16BE(0, 0);
      info.writeBigUInt64BE(1024n * 1024n, 2);
      info.writeUInt16BE(1, 10);
      optionReply(option, Reply.INFO, info);
      optionReply(option, Reply.ACK, Buffer.alloc(0));
      break;
    } else {
      optionReply(option, Reply.ERR_UNSUP, Buffer.alloc(0));
    }
  }
  for (;;) {
    const request = await read(28);
    const command = request.readUInt16BE(6);
    const handle = request.subarray(8, 16);
    const offset = Number(request.readBigUInt64BE(16));
    const length = request.readUInt32BE(24);
    if (command === Command.DISC) return void socket.end();
    if (command === Command.WRITE) await read(length);
    if (options.misbehave === 'unknown-handle') handle.writeUInt32BE(999, 4);
    const chunk = (flags: number, type: number, payload: Buffer) => {
      const head = Buffer.alloc(20);
      head.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
      head.writeUInt16BE(flags, 4);
      head.writeUInt16BE(type, 6);
      handle.copy(head, 8);
      head.writeUInt32BE(payload.length, 16);
      return Buffer.concat([head, payload]);
    };
    if (!options.structured) {
      const reply = Buffer.alloc(16);
      reply.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
      reply.writeUInt32BE(command === Command.READ && offset === 4096 ? 5 : 0, 4);
      handle.copy(reply, 8);
      const data =
        command === Command.READ && offset !== 4096 ? options.content(offset, length) : Buffer.alloc(0);
      await trickle(Buffer.concat([reply, data]));
    } else if (command === Command.READ && offset === 4096) {
      const message = Buffer.from('medium error here');
      const payload = Buffer.alloc(6 + message.length);
      payload.writeUInt32BE(5, 0);
      payload.writeUInt16BE(message.length, 4);
      message.copy(payload, 6);
      await trickle(chunk(1, ReplyType.ERROR, payload));
    } else if (command === Command.READ) {
      const half = length / 2;
      const dataPayload = Buffer.alloc(8 + half);
      dataPayload.writeBigUInt64BE(BigInt(offset), 0);
      options.content(offset, half).copy(dataPayload, 8);
      const hole = Buffer.alloc(12);
      hole.writeBigUInt64BE(BigInt(offset + half), 0);
      hole.writeUInt32BE(length - half, 8);
      await trickle(
        Buffer.concat([
          chunk(0, ReplyType.OFFSET_HOLE, hole),
          chunk(0, ReplyType.OFFSET_DATA, dataPayload),
          chunk(1, ReplyType.NONE, Buffer.alloc(0)),
        ]),
      );
    } else {
      await trickle(chunk(1, ReplyType.NONE, Buffer.alloc(0)));
    }
  }
}

describe('hornbill bench NBD client reply parsing', () => {
  const content = (offset: number, length: number) => patternBytes(offset, length);

  test('structured replies cut into pieces: data, hole and error chunks land where they belong', async (t) => {
    const port = await scriptedServer(t, { structured: true, content });
    const client = await NbdClient.open({ host: '127.0.0.1', port, exportName: '' }, 8);
    t.after(() => client.close());
    const first = Buffer.alloc(2048, 0xff);
    const second = Buffer.alloc(1024, 0xff);
    const failing = Buffer.alloc(512);
    const [a, b, c] = await Promise.all([
      io(client, false, 8192, first),
      io(client, false, 65536, second),
      io(client, false, 4096, failing),
    ]);
    assert.equal(a, null);
    assert.equal(b, null);
    assert.ok(first.subarray(0, 1024).equals(content(8192, 1024)));
    assert.ok(first.subarray(1024).equals(Buffer.alloc(1024)), 'the hole reads as zeros');
    assert.ok(second.subarray(0, 512).equals(content(65536, 512)));
    assert.ok(isHornbillError(c, 'BENCH_NBD_IO_ERROR') && c.details.errno === 5);
    assert.equal(await io(client, true, 0, Buffer.alloc(512)), null);
  });

  test('simple replies when the server has no structured replies, cut into pieces too', async (t) => {
    const port = await scriptedServer(t, { structured: false, content });
    const client = await NbdClient.open({ host: '127.0.0.1', port, exportName: '' }, 8);
    t.after(() => client.close());
    assert.equal(client.structuredReplies, false);
    const targets = [Buffer.alloc(1536), Buffer.alloc(512), Buffer.alloc(512)];
    const results = await Promise.all([
      io(client, false, 0, targets[0]),
      io(client, false, 4096, targets[1]),
      io(client, false, 1 << 16, targets[2]),
    ]);
    assert.equal(results[0], null);
    assert.ok(isHornbillError(results[1], 'BENCH_NBD_IO_ERROR'));
    assert.equal(results[2], null);
    assert.ok(targets[0].equals(content(0, 1536)));
    assert.ok(targets[2].equals(content(1 << 16, 512)));
  });

  test('a reply for a handle never sent breaks the connection: every request in flight fails with a code', async (t) => {
    const port = await scriptedServer(t, { structured: true, content, misbehave: 'unknown-handle' });
    const client = await NbdClient.open({ host: '127.0.0.1', port, exportName: '' }, 8);
    const error = await io(client, false, 0, Buffer.alloc(512));
    assert.ok(isHornbillError(error, 'BENCH_NBD_CONNECTION_CLOSED'));
    assert.match(error.message, /unknown handle/);
    const after = await io(client, false, 0, Buffer.alloc(512));
    assert.ok(isHornbillError(after, 'BENCH_NBD_CONNECTION_CLOSED'), 'later requests fail at once');
  });
});
