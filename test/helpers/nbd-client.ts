import net from 'node:net';

/**
 * A small NBD client for tests, written from the protocol (not from the server's code):
 * every handshake step and every request is explicit, so tests can also send what a
 * correct client never would. Replies are read by one loop and matched by handle.
 */

export const NBD = {
  INIT_MAGIC: 0x4e42444d41474943n,
  OPTION_MAGIC: 0x49484156454f5054n,
  OPTION_REPLY_MAGIC: 0x3e889045565a9n,
  REQUEST_MAGIC: 0x25609513,
  SIMPLE_REPLY_MAGIC: 0x67446698,
  STRUCTURED_REPLY_MAGIC: 0x668e33ef,
  OPT_EXPORT_NAME: 1,
  OPT_ABORT: 2,
  OPT_LIST: 3,
  OPT_STARTTLS: 5,
  OPT_INFO: 6,
  OPT_GO: 7,
  OPT_STRUCTURED_REPLY: 8,
  OPT_LIST_META_CONTEXT: 9,
  OPT_SET_META_CONTEXT: 10,
  REP_ACK: 1,
  REP_SERVER: 2,
  REP_INFO: 3,
  REP_META_CONTEXT: 4,
  REP_ERR_UNSUP: 0x80000001,
  REP_ERR_POLICY: 0x80000002,
  REP_ERR_INVALID: 0x80000003,
  REP_ERR_UNKNOWN: 0x80000006,
  REP_ERR_SHUTDOWN: 0x80000007,
  REP_ERR_TOO_BIG: 0x80000009,
  INFO_EXPORT: 0,
  INFO_NAME: 1,
  INFO_DESCRIPTION: 2,
  INFO_BLOCK_SIZE: 3,
  FLAG_HAS_FLAGS: 1 << 0,
  FLAG_READ_ONLY: 1 << 1,
  FLAG_SEND_FLUSH: 1 << 2,
  FLAG_SEND_FUA: 1 << 3,
  FLAG_SEND_TRIM: 1 << 5,
  FLAG_SEND_WRITE_ZEROES: 1 << 6,
  FLAG_SEND_DF: 1 << 7,
  FLAG_CAN_MULTI_CONN: 1 << 8,
  FLAG_SEND_FAST_ZERO: 1 << 11,
  CMD_READ: 0,
  CMD_WRITE: 1,
  CMD_DISC: 2,
  CMD_FLUSH: 3,
  CMD_TRIM: 4,
  CMD_CACHE: 5,
  CMD_WRITE_ZEROES: 6,
  CMD_BLOCK_STATUS: 7,
  CMD_FLAG_FUA: 1 << 0,
  CMD_FLAG_NO_HOLE: 1 << 1,
  CMD_FLAG_DF: 1 << 2,
  CMD_FLAG_REQ_ONE: 1 << 3,
  CMD_FLAG_FAST_ZERO: 1 << 4,
  REPLY_TYPE_NONE: 0,
  REPLY_TYPE_OFFSET_DATA: 1,
  REPLY_TYPE_OFFSET_HOLE: 2,
  REPLY_TYPE_BLOCK_STATUS: 5,
  REPLY_TYPE_ERROR: 0x8001,
  REPLY_TYPE_ERROR_OFFSET: 0x8002,
  EPERM: 1,
  EIO: 5,
  EINVAL: 22,
  ENOSPC: 28,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Buffers socket input and hands out exact byte counts; one read at a time. */
class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private ended = false;
  private pending: {
    count: number;
    resolve: (bytes: Buffer) => void;
    reject: (error: Error) => void;
  } | null = null;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.pump();
    });
    socket.on('close', () => {
      this.ended = true;
      this.pump();
    });
    socket.on('error', () => {});
  }

  read(count: number): Promise<Buffer> {
    if (this.pending !== null) throw new Error('one read at a time');
    return new Promise((resolve, reject) => {
      this.pending = { count, resolve, reject };
      this.pump();
    });
  }

  get isEnded(): boolean {
    return this.ended;
  }

  private pump(): void {
    const pending = this.pending;
    if (pending === null) return;
    if (this.length >= pending.count) {
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      const bytes = Buffer.from(all.subarray(0, pending.count));
      const rest = all.subarray(pending.count);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.length = rest.length;
      this.pending = null;
      pending.resolve(bytes);
    } else if (this.ended) {
      this.pending = null;
      pending.reject(new ConnectionClosedError(pending.count, this.length));
    }
  }
}

export class ConnectionClosedError extends Error {
  constructor(wanted: number, had: number) {
    super(`connection closed while reading ${wanted} bytes (had ${had})`);
    this.name = 'ConnectionClosedError';
  }
}

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface ExportInfo {
  sizeBytes: number;
  flags: number;
  blockSize?: { minimum: number; preferred: number; maximum: number };
  name?: string;
  description?: string;
  replies: OptionReply[];
  final: number;
}

export interface StructuredChunk {
  flags: number;
  type: number;
  payload: Buffer;
}

export interface NbdReply {
  /** 0 on success, else the NBD error (from a simple reply or the first error chunk). */
  error: number;
  /** READ data reassembled from a simple reply or from data and hole chunks. */
  data?: Buffer;
  chunks: StructuredChunk[];
  simple: boolean;
}

export class NbdReplyError extends Error {
  readonly errno: number;
  constructor(errno: number, what: string) {
    super(`${what} failed with NBD error ${errno}`);
    this.errno = errno;
  }
}

interface PendingRequest {
  command: number;
  offset: number;
  length: number;
  chunks: StructuredChunk[];
  resolve: (reply: NbdReply) => void;
  reject: (error: Error) => void;
}

export class NbdTestClient {
  readonly socket: net.Socket;
  private readonly reader: ByteReader;
  private readonly closedPromise: Promise<void>;
  private structured = false;
  private nextHandle = 1n;
  private readonly pending = new Map<bigint, PendingRequest>();
  handshakeFlags = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.reader = new ByteReader(socket);
    this.closedPromise = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<NbdTestClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.setNoDelay(true);
        resolve(new NbdTestClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Connects, reads the greeting and sends the client flags (fixed newstyle, no zeroes). */
  static async open(
    port: number,
    options: { clientFlags?: number; host?: string } = {},
  ): Promise<NbdTestClient> {
    const client = await NbdTestClient.connect(port, options.host);
    await client.readGreeting();
    client.sendClientFlags(options.clientFlags ?? 0b11);
    return client;
  }

  /** Opens a client and enters transmission on `name` with NBD_OPT_GO. */
  static async attach(
    port: number,
    name: string,
    options: { structured?: boolean; baseAllocation?: boolean; host?: string } = {},
  ): Promise<{ client: NbdTestClient; info: ExportInfo }> {
    const client = await NbdTestClient.open(port, { host: options.host });
    if (options.structured || options.baseAllocation) {
      const reply = await client.option(NBD.OPT_STRUCTURED_REPLY);
      if (reply.type !== NBD.REP_ACK) throw new Error(`structured replies refused: ${reply.type}`);
    }
    if (options.baseAllocation) {
      const result = await client.setMetaContext(name, ['base:allocation']);
      if (result.final !== NBD.REP_ACK || result.contexts.length !== 1)
        throw new Error('base:allocation refused');
    }
    const info = await client.infoOrGo(NBD.OPT_GO, name, [NBD.INFO_BLOCK_SIZE]);
    if (info.final !== NBD.REP_ACK) throw new Error(`NBD_OPT_GO refused: 0x${info.final.toString(16)}`);
    client.startTransmission(options.structured === true || options.baseAllocation === true);
    return { client, info };
  }

  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get isClosed(): boolean {
    return this.reader.isEnded;
  }

  async readGreeting(): Promise<void> {
    const greeting = await this.reader.read(18);
    if (greeting.readBigUInt64BE(0) !== NBD.INIT_MAGIC) throw new Error('bad INIT magic');
    if (greeting.readBigUInt64BE(8) !== NBD.OPTION_MAGIC) throw new Error('not a newstyle server');
    this.handshakeFlags = greeting.readUInt16BE(16);
  }

  sendClientFlags(flags: number): void {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(flags >>> 0, 0);
    this.socket.write(bytes);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), lengthOverride?: number): void {
    const header = Buffer.alloc(16);
    header.writeBigUInt64BE(NBD.OPTION_MAGIC, 0);
    header.writeUInt32BE(option >>> 0, 8);
    header.writeUInt32BE(lengthOverride ?? data.length, 12);
    this.socket.write(Buffer.concat([header, data]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.reader.read(20);
    if (header.readBigUInt64BE(0) !== NBD.OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
    const length = header.readUInt32BE(16);
    const data = length > 0 ? await this.reader.read(length) : Buffer.alloc(0);
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data };
  }

  /** Replies up to and including the final one (ACK or an error). */
  async readOptionReplies(): Promise<OptionReply[]> {
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.readOptionReply();
      replies.push(reply);
      if (reply.type === NBD.REP_ACK || reply.type >= 0x80000000) return replies;
    }
  }

  /** Sends an option and returns its final reply. */
  async option(option: number, data?: Buffer): Promise<OptionReply> {
    this.sendOption(option, data);
    const replies = await this.readOptionReplies();
    return replies[replies.length - 1];
  }

  async list(): Promise<{ names: string[]; final: number }> {
    this.sendOption(NBD.OPT_LIST);
    const replies = await this.readOptionReplies();
    const names = replies
      .filter((reply) => reply.type === NBD.REP_SERVER)
      .map((reply) => reply.data.subarray(4, 4 + reply.data.readUInt32BE(0)).toString('utf8'));
    return { names, final: replies[replies.length - 1].type };
  }

  async infoOrGo(option: number, name: string, requests: number[] = []): Promise<ExportInfo> {
    this.sendOption(option, infoOptionData(name, requests));
    const replies = await this.readOptionReplies();
    const info: ExportInfo = { sizeBytes: -1, flags: -1, replies, final: replies[replies.length - 1].type };
    for (const reply of replies) {
      if (reply.type !== NBD.REP_INFO) continue;
      const type = reply.data.readUInt16BE(0);
      if (type === NBD.INFO_EXPORT) {
        info.sizeBytes = Number(reply.data.readBigUInt64BE(2));
        info.flags = reply.data.readUInt16BE(10);
      } else if (type === NBD.INFO_BLOCK_SIZE) {
        info.blockSize = {
          minimum: reply.data.readUInt32BE(2),
          preferred: reply.data.readUInt32BE(6),
          maximum: reply.data.readUInt32BE(10),
        };
      } else if (type === NBD.INFO_NAME) {
        info.name = reply.data.subarray(2).toString('utf8');
      } else if (type === NBD.INFO_DESCRIPTION) {
        info.description = reply.data.subarray(2).toString('utf8');
      }
    }
    return info;
  }

  async setMetaContext(
    name: string,
    queries: string[],
    option: number = NBD.OPT_SET_META_CONTEXT,
  ): Promise<{ contexts: { id: number; name: string }[]; final: number }> {
    this.sendOption(option, metaContextOptionData(name, queries));
    const replies = await this.readOptionReplies();
    const contexts = replies
      .filter((reply) => reply.type === NBD.REP_META_CONTEXT)
      .map((reply) => ({ id: reply.data.readUInt32BE(0), name: reply.data.subarray(4).toString('utf8') }));
    return { contexts, final: replies[replies.length - 1].type };
  }

  /** NBD_OPT_EXPORT_NAME: reads size, flags and (unless NO_ZEROES) the 124 zero bytes. */
  async exportName(
    name: string,
    noZeroes = true,
  ): Promise<{ sizeBytes: number; flags: number; padding: Buffer }> {
    this.sendOption(NBD.OPT_EXPORT_NAME, Buffer.from(name, 'utf8'));
    const reply = await this.reader.read(10);
    const padding = noZeroes ? Buffer.alloc(0) : await this.reader.read(124);
    return { sizeBytes: Number(reply.readBigUInt64BE(0)), flags: reply.readUInt16BE(8), padding };
  }

  // ---- transmission -----------------------------------------------------------------

  startTransmission(structured: boolean): void {
    this.structured = structured;
    void this.readReplies().catch((error: Error) => {
      for (const request of this.pending.values()) request.reject(error);
      this.pending.clear();
    });
  }

  /** Sends one request (with `payload` for WRITE) and resolves with its reply. */
  request(
    command: number,
    options: { flags?: number; offset?: number; length?: number; payload?: Buffer; handle?: bigint } = {},
  ): Promise<NbdReply> {
    const handle = options.handle ?? this.nextHandle++;
    const offset = options.offset ?? 0;
    const length = options.length ?? options.payload?.length ?? 0;
    const header = Buffer.alloc(28);
    header.writeUInt32BE(NBD.REQUEST_MAGIC, 0);
    header.writeUInt16BE(options.flags ?? 0, 4);
    header.writeUInt16BE(command, 6);
    header.writeBigUInt64BE(handle, 8);
    header.writeBigUInt64BE(BigInt(offset), 16);
    header.writeUInt32BE(length >>> 0, 24);
    const promise = new Promise<NbdReply>((resolve, reject) => {
      if (command !== NBD.CMD_DISC)
        this.pending.set(handle, { command, offset, length, chunks: [], resolve, reject });
      else resolve({ error: 0, chunks: [], simple: true });
    });
    this.socket.write(options.payload === undefined ? header : Buffer.concat([header, options.payload]));
    return promise;
  }

  async read(offset: number, length: number, flags = 0): Promise<Buffer> {
    const reply = await this.request(NBD.CMD_READ, { offset, length, flags });
    if (reply.error !== 0) throw new NbdReplyError(reply.error, `READ ${offset}+${length}`);
    return reply.data!;
  }

  async write(offset: number, data: Buffer, flags = 0): Promise<void> {
    const reply = await this.request(NBD.CMD_WRITE, { offset, payload: data, flags });
    if (reply.error !== 0) throw new NbdReplyError(reply.error, `WRITE ${offset}+${data.length}`);
  }

  /** Resolves with the NBD error of a command without payload (0 = success). */
  async command(command: number, offset = 0, length = 0, flags = 0): Promise<number> {
    return (await this.request(command, { offset, length, flags })).error;
  }

  /** base:allocation descriptors of a BLOCK_STATUS reply. */
  async blockStatus(
    offset: number,
    length: number,
    flags = 0,
  ): Promise<{ error: number; contextId?: number; extents: { length: number; flags: number }[] }> {
    const reply = await this.request(NBD.CMD_BLOCK_STATUS, { offset, length, flags });
    const chunk = reply.chunks.find((candidate) => candidate.type === NBD.REPLY_TYPE_BLOCK_STATUS);
    if (reply.error !== 0 || chunk === undefined) return { error: reply.error, extents: [] };
    const extents = [];
    for (let position = 4; position < chunk.payload.length; position += 8) {
      extents.push({
        length: chunk.payload.readUInt32BE(position),
        flags: chunk.payload.readUInt32BE(position + 4),
      });
    }
    return { error: 0, contextId: chunk.payload.readUInt32BE(0), extents };
  }

  /** NBD_CMD_DISC, then waits for the server to close the connection. */
  async disconnect(): Promise<void> {
    await this.request(NBD.CMD_DISC);
    await this.closedPromise;
  }

  destroy(): void {
    this.socket.destroy();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private async readReplies(): Promise<void> {
    for (;;) {
      const magicBytes = await this.reader.read(4).catch((error: Error) => {
        if (this.pending.size === 0 && error instanceof ConnectionClosedError) return null;
        throw error;
      });
      if (magicBytes === null) return;
      const magic = magicBytes.readUInt32BE(0);
      if (magic === NBD.SIMPLE_REPLY_MAGIC) {
        const rest = await this.reader.read(12);
        const error = rest.readUInt32BE(0);
        const request = this.take(rest.readBigUInt64BE(4));
        if (this.structured && request.command === NBD.CMD_READ)
          throw new Error('simple reply to a structured READ');
        const data =
          request.command === NBD.CMD_READ && error === 0 && request.length > 0
            ? await this.reader.read(request.length)
            : request.command === NBD.CMD_READ && error === 0
              ? Buffer.alloc(0)
              : undefined;
        request.resolve({ error, data, chunks: [], simple: true });
      } else if (magic === NBD.STRUCTURED_REPLY_MAGIC) {
        if (!this.structured) throw new Error('structured reply without negotiation');
        const rest = await this.reader.read(16);
        const flags = rest.readUInt16BE(0);
        const type = rest.readUInt16BE(2);
        const handle = rest.readBigUInt64BE(4);
        const length = rest.readUInt32BE(12);
        const payload = length > 0 ? await this.reader.read(length) : Buffer.alloc(0);
        const request = this.pending.get(handle);
        if (request === undefined) throw new Error(`reply for unknown handle ${handle}`);
        request.chunks.push({ flags, type, payload });
        if ((flags & 1) !== 0) {
          this.pending.delete(handle);
          request.resolve(assembleStructured(request));
        }
      } else {
        throw new Error(`bad reply magic 0x${magic.toString(16)}`);
      }
    }
  }

  private take(handle: bigint): PendingRequest {
    const request = this.pending.get(handle);
    if (request === undefined) throw new Error(`reply for unknown handle ${handle}`);
    this.pending.delete(handle);
    return request;
  }
}

function assembleStructured(request: PendingRequest): NbdReply {
  let error = 0;
  let data: Buffer | undefined;
  if (request.command === NBD.CMD_READ) data = Buffer.alloc(request.length);
  let covered = 0;
  for (const chunk of request.chunks) {
    if ((chunk.type & 0x8000) !== 0) {
      if (error === 0) error = chunk.payload.readUInt32BE(0);
    } else if (chunk.type === NBD.REPLY_TYPE_OFFSET_DATA) {
      const offset = Number(chunk.payload.readBigUInt64BE(0));
      const bytes = chunk.payload.subarray(8);
      if (offset < request.offset || offset + bytes.length > request.offset + request.length) {
        throw new Error('data chunk outside the request');
      }
      bytes.copy(data!, offset - request.offset);
      covered += bytes.length;
    } else if (chunk.type === NBD.REPLY_TYPE_OFFSET_HOLE) {
      covered += chunk.payload.readUInt32BE(8);
    }
  }
  if (request.command === NBD.CMD_READ && error === 0 && covered !== request.length) {
    throw new Error(`read reply covers ${covered} of ${request.length} bytes`);
  }
  return { error, data: error === 0 ? data : undefined, chunks: request.chunks, simple: false };
}

export function infoOptionData(name: string, requests: number[]): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const data = Buffer.alloc(4 + nameBytes.length + 2 + 2 * requests.length);
  data.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(data, 4);
  data.writeUInt16BE(requests.length, 4 + nameBytes.length);
  for (const [index, request] of requests.entries())
    data.writeUInt16BE(request, 6 + nameBytes.length + 2 * index);
  return data;
}

export function metaContextOptionData(name: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const nameBytes = Buffer.from(name, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(nameBytes.length, 0);
  parts.push(head, nameBytes);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(queries.length, 0);
  parts.push(count);
  for (const query of queries) {
    const bytes = Buffer.from(query, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length, 0);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * Connects, sends `bytes` (in the given pieces), half-closes, and collects whatever the
 * server sends until it closes. A server that never closes fails after `limitMs`.
 */
export function rawExchange(
  port: number,
  pieces: Buffer[],
  limitMs = 15_000,
): Promise<{ received: Buffer; reset: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server did not close within ${limitMs} ms after input ended`));
    }, limitMs);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => {
      reset = true;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(received), reset });
    });
    socket.on('connect', () => {
      for (const piece of pieces) socket.write(piece);
      socket.end();
    });
  });
}
