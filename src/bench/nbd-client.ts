import net from 'node:net';
import { assert } from '../assert.ts';
import {
  ClientFlag,
  Command,
  HandshakeFlag,
  INIT_MAGIC,
  Info,
  OPTION_MAGIC,
  OPTION_REPLY_MAGIC,
  Option,
  REQUEST_BYTES,
  REQUEST_MAGIC,
  Reply,
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
} from '../dataplane/nbd/protocol.ts';
import { whenConnected } from '../dataplane/tcp-connect.ts';
import { HornbillError } from '../errors.ts';
import type { BlockConnection, IoRequest } from './connection.ts';

export interface NbdEndpoint {
  host: string;
  port: number;
  exportName: string;
}

/** Largest option reply read during the handshake (export info, errors with messages). */
const OPTION_REPLY_LIMIT_BYTES = 64 * 1024;
const HANDSHAKE_TIMEOUT_MS = 30_000;

const State = {
  /** Reading the first 4 bytes of a reply: its magic. */
  MAGIC: 0,
  /** The rest of a simple reply header (16 bytes in all). */
  SIMPLE_HEADER: 1,
  /** The rest of a structured chunk header (20 bytes in all). */
  CHUNK_HEADER: 2,
  /** Read data of a simple reply, straight into the request's buffer. */
  SIMPLE_DATA: 3,
  /** The 8-byte offset that starts an OFFSET_DATA chunk. */
  DATA_OFFSET: 4,
  /** OFFSET_DATA bytes, straight into the request's buffer. */
  CHUNK_DATA: 5,
  /** A small chunk payload (hole, error) gathered in the scratch buffer. */
  SMALL_PAYLOAD: 6,
  /** Payload bytes to skip (an error message, an unknown chunk). */
  SKIP: 7,
} as const;

interface Slot {
  index: number;
  /** Sequence in the high word of the handle: a reply for an old use of the slot is caught. */
  sequence: number;
  busy: boolean;
  command: number;
  offsetBytes: number;
  data: Buffer | null;
  error: number;
  request: IoRequest | null;
  readonly header: Buffer;
}

/**
 * An NBD client for `hornbill bench`, written for the hot path (docs/bench.md): fixed
 * newstyle handshake with NBD_OPT_GO (structured replies when the server has them), then
 * pipelined READ and WRITE requests matched to replies by handle. Each request slot owns
 * its 28-byte header; reply headers are gathered in one reused 20-byte buffer and read
 * data is copied from the socket's chunks straight into the caller's buffer. Nothing is
 * allocated per I/O.
 */
export class NbdClient implements BlockConnection {
  readonly sizeBytes: number;
  readonly blockBytes: number;
  readonly maximumTransferBytes: number;
  readonly description: string;
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  private readonly socket: net.Socket;
  private readonly slots: Slot[] = [];
  private readonly freeSlots: Slot[] = [];
  private readonly header = Buffer.alloc(20);
  private readonly scratch = Buffer.alloc(32);
  private state: number = State.MAGIC;
  private filled = 0;
  private needed = 4;
  private current: Slot | null = null;
  private chunkFlags = 0;
  private chunkType = 0;
  private remaining = 0;
  private dataPosition = 0;
  private failure: HornbillError | null = null;

  private constructor(
    socket: net.Socket,
    endpoint: NbdEndpoint,
    info: {
      sizeBytes: number;
      flags: number;
      minimumBlock: number;
      maximumBlock: number;
      structured: boolean;
    },
    queueDepth: number,
  ) {
    this.socket = socket;
    this.sizeBytes = info.sizeBytes;
    this.transmissionFlags = info.flags;
    this.blockBytes = Math.max(512, info.minimumBlock);
    this.maximumTransferBytes = info.maximumBlock;
    this.structuredReplies = info.structured;
    this.description = `nbd ${endpoint.host}:${endpoint.port} export ${JSON.stringify(endpoint.exportName)}`;
    for (let index = 0; index < queueDepth; index++) {
      const slot: Slot = {
        index,
        sequence: 0,
        busy: false,
        command: 0,
        offsetBytes: 0,
        data: null,
        error: 0,
        request: null,
        header: Buffer.alloc(REQUEST_BYTES),
      };
      slot.header.writeUInt32BE(REQUEST_MAGIC, 0);
      this.slots.push(slot);
      this.freeSlots.push(slot);
    }
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.fail(`the connection broke: ${error.message}`));
    socket.on('close', () => this.fail('the server closed the connection'));
  }

  /** Connects, negotiates and enters transmission; `queueDepth` requests may be in flight. */
  static async open(endpoint: NbdEndpoint, queueDepth: number): Promise<NbdClient> {
    const socket = await connect(endpoint);
    const handshake = new Handshake(socket);
    try {
      const info = await handshake.run(endpoint.exportName);
      socket.removeAllListeners('data');
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      const client = new NbdClient(socket, endpoint, info, queueDepth);
      if (handshake.leftover.length > 0) client.receive(handshake.leftover);
      return client;
    } catch (error) {
      socket.destroy();
      throw error;
    } finally {
      handshake.stop();
    }
  }

  get inFlight(): number {
    return this.slots.length - this.freeSlots.length;
  }

  read(offsetBytes: number, data: Buffer, request: IoRequest): void {
    this.submit(Command.READ, offsetBytes, data, request);
  }

  write(offsetBytes: number, data: Buffer, request: IoRequest): void {
    this.submit(Command.WRITE, offsetBytes, data, request);
  }

  private submit(command: number, offsetBytes: number, data: Buffer, request: IoRequest): void {
    if (this.failure !== null) {
      const failure = this.failure;
      queueMicrotask(() => request.complete(failure));
      return;
    }
    const slot = this.freeSlots.pop();
    if (slot === undefined)
      throw new HornbillError('INTERNAL', `more than ${this.slots.length} NBD requests in flight`);
    slot.busy = true;
    slot.sequence = (slot.sequence + 1) >>> 0;
    slot.command = command;
    slot.offsetBytes = offsetBytes;
    slot.data = data;
    slot.error = 0;
    slot.request = request;
    const header = slot.header;
    header.writeUInt16BE(0, 4);
    header.writeUInt16BE(command, 6);
    header.writeUInt32BE(slot.sequence, 8);
    header.writeUInt32BE(slot.index, 12);
    header.writeUInt32BE(Math.floor(offsetBytes / 2 ** 32), 16);
    header.writeUInt32BE(offsetBytes >>> 0, 20);
    header.writeUInt32BE(data.length, 24);
    if (command === Command.WRITE) {
      this.socket.cork();
      this.socket.write(header);
      this.socket.write(data);
      this.socket.uncork();
    } else {
      this.socket.write(header);
    }
  }

  // ---- receiving ------------------------------------------------------------------------

  private receive(chunk: Buffer): void {
    let position = 0;
    while (position < chunk.length && this.failure === null) {
      const available = chunk.length - position;
      switch (this.state) {
        case State.MAGIC:
        case State.SIMPLE_HEADER:
        case State.CHUNK_HEADER: {
          const take = Math.min(available, this.needed - this.filled);
          chunk.copy(this.header, this.filled, position, position + take);
          this.filled += take;
          position += take;
          if (this.filled === this.needed) this.headerComplete();
          break;
        }
        case State.SIMPLE_DATA:
        case State.CHUNK_DATA: {
          const take = Math.min(available, this.remaining);
          chunk.copy(this.current!.data!, this.dataPosition, position, position + take);
          this.dataPosition += take;
          this.remaining -= take;
          position += take;
          if (this.remaining === 0) {
            if (this.state === State.SIMPLE_DATA) this.finishSimpleRead();
            else this.chunkDone();
          }
          break;
        }
        case State.DATA_OFFSET:
        case State.SMALL_PAYLOAD: {
          const take = Math.min(available, this.needed - this.filled);
          chunk.copy(this.scratch, this.filled, position, position + take);
          this.filled += take;
          position += take;
          if (this.filled === this.needed) this.smallPayloadComplete();
          break;
        }
        case State.SKIP: {
          const take = Math.min(available, this.remaining);
          this.remaining -= take;
          position += take;
          if (this.remaining === 0) this.chunkDone();
          break;
        }
      }
    }
  }

  private expect(state: number, needed: number): void {
    this.state = state;
    this.needed = needed;
  }

  private headerComplete(): void {
    const header = this.header;
    if (this.state === State.MAGIC) {
      const magic = header.readUInt32BE(0);
      if (magic === SIMPLE_REPLY_MAGIC) this.expect(State.SIMPLE_HEADER, 16);
      else if (magic === STRUCTURED_REPLY_MAGIC && this.structuredReplies)
        this.expect(State.CHUNK_HEADER, 20);
      else {
        this.fail(`bad reply magic 0x${magic.toString(16)}`);
        return;
      }
      return;
    }
    if (this.state === State.SIMPLE_HEADER) {
      const slot = this.slotFor(header.readUInt32BE(8), header.readUInt32BE(12));
      if (slot === null) return;
      slot.error = header.readUInt32BE(4);
      this.resetHeader();
      if (slot.command === Command.READ && slot.error === 0) {
        if (this.structuredReplies) {
          this.fail('a simple reply to a READ after structured replies were agreed');
          return;
        }
        this.current = slot;
        this.dataPosition = 0;
        this.remaining = slot.data!.length;
        this.state = State.SIMPLE_DATA;
        if (this.remaining === 0) this.finishSimpleRead();
        return;
      }
      this.finish(slot);
      return;
    }
    // A structured reply chunk header: flags, type, handle, payload length.
    const slot = this.slotFor(header.readUInt32BE(8), header.readUInt32BE(12));
    if (slot === null) return;
    this.current = slot;
    this.chunkFlags = header.readUInt16BE(4);
    this.chunkType = header.readUInt16BE(6);
    const length = header.readUInt32BE(16);
    this.filled = 0;
    if (this.chunkType === ReplyType.OFFSET_DATA) {
      if (length < 8) {
        this.fail('an OFFSET_DATA chunk shorter than its offset');
        return;
      }
      this.remaining = length - 8;
      this.expect(State.DATA_OFFSET, 8);
    } else if (this.chunkType === ReplyType.OFFSET_HOLE) {
      if (length !== 12) {
        this.fail('an OFFSET_HOLE chunk that is not 12 bytes');
        return;
      }
      this.expect(State.SMALL_PAYLOAD, 12);
    } else if ((this.chunkType & 0x8000) !== 0) {
      if (length < 4) {
        this.fail('an error chunk shorter than its error value');
        return;
      }
      this.remaining = length - 4;
      this.expect(State.SMALL_PAYLOAD, 4);
    } else {
      // NONE, or a chunk type this client does not use (BLOCK_STATUS): skip its payload.
      this.remaining = length;
      this.state = State.SKIP;
      if (length === 0) this.chunkDone();
    }
  }

  private smallPayloadComplete(): void {
    const slot = this.current!;
    const scratch = this.scratch;
    if (this.state === State.DATA_OFFSET) {
      const offset = scratch.readUInt32BE(0) * 2 ** 32 + scratch.readUInt32BE(4);
      const position = offset - slot.offsetBytes;
      if (slot.data === null || position < 0 || position + this.remaining > slot.data.length) {
        this.fail('an OFFSET_DATA chunk outside its request');
        return;
      }
      this.dataPosition = position;
      this.state = State.CHUNK_DATA;
      if (this.remaining === 0) this.chunkDone();
      return;
    }
    if (this.chunkType === ReplyType.OFFSET_HOLE) {
      const offset = scratch.readUInt32BE(0) * 2 ** 32 + scratch.readUInt32BE(4);
      const length = scratch.readUInt32BE(8);
      const position = offset - slot.offsetBytes;
      if (slot.data === null || position < 0 || position + length > slot.data.length) {
        this.fail('an OFFSET_HOLE chunk outside its request');
        return;
      }
      slot.data.fill(0, position, position + length);
      this.chunkDone();
      return;
    }
    // An error chunk: the error value, then a message (and an offset) to skip.
    if (slot.error === 0) slot.error = scratch.readUInt32BE(0) || 5;
    this.state = State.SKIP;
    if (this.remaining === 0) this.chunkDone();
  }

  private chunkDone(): void {
    const slot = this.current!;
    this.current = null;
    this.resetHeader();
    if ((this.chunkFlags & ReplyFlag.DONE) !== 0) this.finish(slot);
  }

  private finishSimpleRead(): void {
    const slot = this.current!;
    this.current = null;
    this.resetHeader();
    this.finish(slot);
  }

  private resetHeader(): void {
    this.state = State.MAGIC;
    this.filled = 0;
    this.needed = 4;
  }

  private slotFor(sequence: number, index: number): Slot | null {
    const slot = this.slots[index];
    if (slot === undefined || !slot.busy || slot.sequence !== sequence) {
      this.fail(`a reply for an unknown handle (slot ${index}, sequence ${sequence})`);
      return null;
    }
    return slot;
  }

  private finish(slot: Slot): void {
    assert(slot.busy, 'a finished NBD request was in flight');
    const request = slot.request!;
    const error = slot.error;
    slot.busy = false;
    slot.request = null;
    slot.data = null;
    this.freeSlots.push(slot);
    request.complete(
      error === 0
        ? null
        : new HornbillError(
            'BENCH_NBD_IO_ERROR',
            `NBD ${slot.command === Command.READ ? 'READ' : 'WRITE'} at offset ${slot.offsetBytes} failed with error ${error}`,
            { errno: error, offsetBytes: slot.offsetBytes },
          ),
    );
  }

  private fail(reason: string): void {
    if (this.failure !== null) return;
    const failure = new HornbillError('BENCH_NBD_CONNECTION_CLOSED', `${this.description}: ${reason}`);
    this.failure = failure;
    this.socket.destroy();
    for (const slot of this.slots) {
      if (!slot.busy) continue;
      const request = slot.request!;
      slot.busy = false;
      slot.request = null;
      slot.data = null;
      this.freeSlots.push(slot);
      request.complete(failure);
    }
  }

  /** NBD_CMD_DISC once nothing is in flight, then closes the socket. */
  async close(): Promise<void> {
    if (this.failure !== null) return;
    const disconnect = Buffer.alloc(REQUEST_BYTES);
    disconnect.writeUInt32BE(REQUEST_MAGIC, 0);
    disconnect.writeUInt16BE(Command.DISC, 6);
    this.failure = new HornbillError(
      'BENCH_NBD_CONNECTION_CLOSED',
      `${this.description}: closed by the client`,
    );
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end(disconnect);
      setTimeout(() => this.socket.destroy(), 2000).unref();
    });
  }
}

function connect(endpoint: NbdEndpoint): Promise<net.Socket> {
  const socket = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
  return whenConnected(
    socket,
    HANDSHAKE_TIMEOUT_MS,
    (reason) =>
      new HornbillError(
        'BENCH_NBD_HANDSHAKE_FAILED',
        `cannot connect to NBD server ${endpoint.host}:${endpoint.port}: ${reason}`,
      ),
  );
}

/** The handshake, read with awaits (it runs once per connection, not per I/O). */
class Handshake {
  private buffered = Buffer.alloc(0);
  private waiter: { bytes: number; resolve: (data: Buffer) => void; reject: (error: Error) => void } | null =
    null;
  private ended: string | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.pump();
    });
    socket.on('error', (error) => this.end(error.message));
    socket.on('close', () => this.end('the server closed the connection'));
    this.timer = setTimeout(() => this.end('the handshake timed out'), HANDSHAKE_TIMEOUT_MS);
  }

  get leftover(): Buffer {
    return this.buffered;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private end(reason: string): void {
    if (this.ended !== null) return;
    this.ended = reason;
    this.pump();
  }

  private pump(): void {
    const waiter = this.waiter;
    if (waiter === null) return;
    if (this.buffered.length >= waiter.bytes) {
      this.waiter = null;
      const data = Buffer.from(this.buffered.subarray(0, waiter.bytes));
      this.buffered = this.buffered.subarray(waiter.bytes);
      waiter.resolve(data);
    } else if (this.ended !== null) {
      this.waiter = null;
      waiter.reject(failed(this.ended));
    }
  }

  private read(bytes: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { bytes, resolve, reject };
      this.pump();
    });
  }

  private sendOption(option: number, data: Buffer): void {
    const header = Buffer.alloc(16);
    header.writeBigUInt64BE(OPTION_MAGIC, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([header, data]));
  }

  private async optionReply(option: number): Promise<{ type: number; data: Buffer }> {
    const header = await this.read(20);
    if (header.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw failed('bad option reply magic');
    if (header.readUInt32BE(8) !== option) throw failed('an option reply for another option');
    const length = header.readUInt32BE(16);
    if (length > OPTION_REPLY_LIMIT_BYTES) throw failed(`an option reply of ${length} bytes`);
    return { type: header.readUInt32BE(12), data: length > 0 ? await this.read(length) : Buffer.alloc(0) };
  }

  async run(exportName: string): Promise<{
    sizeBytes: number;
    flags: number;
    minimumBlock: number;
    maximumBlock: number;
    structured: boolean;
  }> {
    const greeting = await this.read(18);
    if (greeting.readBigUInt64BE(0) !== INIT_MAGIC) throw failed('not an NBD server (bad INIT magic)');
    if (greeting.readBigUInt64BE(8) !== OPTION_MAGIC) throw failed('the server does not speak newstyle NBD');
    const handshakeFlags = greeting.readUInt16BE(16);
    if ((handshakeFlags & HandshakeFlag.FIXED_NEWSTYLE) === 0)
      throw failed('the server is not fixed newstyle');
    const noZeroes = (handshakeFlags & HandshakeFlag.NO_ZEROES) !== 0;
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(ClientFlag.FIXED_NEWSTYLE | (noZeroes ? ClientFlag.NO_ZEROES : 0), 0);
    this.socket.write(clientFlags);

    this.sendOption(Option.STRUCTURED_REPLY, Buffer.alloc(0));
    const structuredReply = await this.optionReply(Option.STRUCTURED_REPLY);
    const structured = structuredReply.type === Reply.ACK;

    const name = Buffer.from(exportName, 'utf8');
    const go = Buffer.alloc(4 + name.length + 2 + 2);
    go.writeUInt32BE(name.length, 0);
    name.copy(go, 4);
    go.writeUInt16BE(1, 4 + name.length);
    go.writeUInt16BE(Info.BLOCK_SIZE, 6 + name.length);
    this.sendOption(Option.GO, go);
    let sizeBytes = -1;
    let flags = 0;
    let minimumBlock = 1;
    let maximumBlock = 32 * 1024 * 1024;
    for (let replies = 0; ; replies++) {
      if (replies > 64) throw failed('too many replies to NBD_OPT_GO');
      const reply = await this.optionReply(Option.GO);
      if (reply.type === Reply.INFO && reply.data.length >= 2) {
        const type = reply.data.readUInt16BE(0);
        if (type === Info.EXPORT && reply.data.length >= 12) {
          sizeBytes = Number(reply.data.readBigUInt64BE(2));
          flags = reply.data.readUInt16BE(10);
        } else if (type === Info.BLOCK_SIZE && reply.data.length >= 14) {
          minimumBlock = reply.data.readUInt32BE(2);
          maximumBlock = reply.data.readUInt32BE(10);
        }
      } else if (reply.type === Reply.ACK) {
        break;
      } else if (reply.type === Reply.ERR_UNSUP) {
        return { ...(await this.exportNameFallback(name, noZeroes)), minimumBlock, maximumBlock, structured };
      } else if (reply.type >= 0x80000000) {
        const message = reply.data.toString('utf8');
        throw failed(
          `export ${JSON.stringify(exportName)} refused (NBD_OPT_GO error 0x${reply.type.toString(16)}${message === '' ? '' : `: ${message}`})`,
        );
      }
    }
    if (sizeBytes < 0) throw failed('NBD_OPT_GO ended without the export size');
    return { sizeBytes, flags, minimumBlock, maximumBlock, structured };
  }

  private async exportNameFallback(
    name: Buffer,
    noZeroes: boolean,
  ): Promise<{ sizeBytes: number; flags: number }> {
    this.sendOption(Option.EXPORT_NAME, name);
    const reply = await this.read(noZeroes ? 10 : 134);
    return { sizeBytes: Number(reply.readBigUInt64BE(0)), flags: reply.readUInt16BE(8) };
  }
}

function failed(reason: string): HornbillError {
  return new HornbillError('BENCH_NBD_HANDSHAKE_FAILED', `NBD handshake: ${reason}`);
}
