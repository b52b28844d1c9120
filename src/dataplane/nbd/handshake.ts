import { type NbdExport, transmissionFlagsFor } from './nbd-export.ts';
import {
  BASE_ALLOCATION_CONTEXT_ID,
  BASE_ALLOCATION_CONTEXT_NAME,
  EXPORT_NAME_REPLY_BYTES,
  EXPORT_NAME_REPLY_PADDING_BYTES,
  Info,
  MAXIMUM_PAYLOAD_BYTES,
  META_QUERIES_LIMIT,
  MINIMUM_BLOCK_BYTES,
  OPTION_REPLY_HEADER_BYTES,
  OPTION_REPLY_MAGIC,
  Option,
  PREFERRED_BLOCK_BYTES,
  Reply,
  STRING_LIMIT_BYTES,
} from './protocol.ts';

/** What the handshake needs from the server. */
export interface HandshakeHost {
  findExport(name: string): NbdExport | undefined;
  listExports(): Iterable<NbdExport>;
  readonly closing: boolean;
}

/** What the connection does after an option. */
export type OptionOutcome =
  | { kind: 'continue' }
  | { kind: 'transmission'; entry: NbdExport; structuredReplies: boolean; baseAllocation: boolean }
  /** NBD_OPT_ABORT was acknowledged: the client drops the connection; the server ends it. */
  | { kind: 'abort' }
  /** The protocol leaves no way to answer (NBD_OPT_EXPORT_NAME refused): hard disconnect. */
  | { kind: 'disconnect'; reason: string };

const CONTINUE: OptionOutcome = { kind: 'continue' };
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Option haggling of the fixed newstyle handshake, after the client flags: one call per
 * option, which writes the option's replies and says what follows. It holds the state
 * that options negotiate (structured replies, the selected metadata context). Option
 * data arrives whole and bounded (the connection refuses oversized options before this).
 */
export class Handshake {
  private readonly host: HandshakeHost;
  private readonly noZeroes: boolean;
  private readonly write: (bytes: Buffer) => void;
  private structuredReplies = false;
  /** The export named by the last successful NBD_OPT_SET_META_CONTEXT that selected base:allocation. */
  private baseAllocationExport: string | null = null;

  constructor(host: HandshakeHost, options: { noZeroes: boolean; write: (bytes: Buffer) => void }) {
    this.host = host;
    this.noZeroes = options.noZeroes;
    this.write = options.write;
  }

  handleOption(option: number, data: Buffer): OptionOutcome {
    if (option === Option.ABORT) {
      this.reply(option, Reply.ACK);
      return { kind: 'abort' };
    }
    if (option === Option.EXPORT_NAME) return this.exportName(data);
    if (this.host.closing) return this.refuse(option, Reply.ERR_SHUTDOWN, 'the server is shutting down');
    switch (option) {
      case Option.LIST:
        return this.list(option, data);
      case Option.INFO:
      case Option.GO:
        return this.infoOrGo(option, data);
      case Option.STRUCTURED_REPLY:
        if (data.length !== 0) return this.refuse(option, Reply.ERR_INVALID, 'the option takes no data');
        this.structuredReplies = true;
        this.reply(option, Reply.ACK);
        return CONTINUE;
      case Option.LIST_META_CONTEXT:
      case Option.SET_META_CONTEXT:
        return this.metaContext(option, data);
      case Option.STARTTLS:
        return this.refuse(option, Reply.ERR_UNSUP, 'TLS is not supported by this server');
      default:
        return this.refuse(option, Reply.ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  /** Refuses an option whose data was longer than `limitBytes` (skipped unread by the connection). */
  refuseTooBig(option: number, limitBytes: number): OptionOutcome {
    if (this.host.closing) return this.refuse(option, Reply.ERR_SHUTDOWN, 'the server is shutting down');
    return this.refuse(option, Reply.ERR_TOO_BIG, `option data is limited to ${limitBytes} bytes`);
  }

  private exportName(data: Buffer): OptionOutcome {
    if (this.host.closing)
      return { kind: 'disconnect', reason: 'NBD_OPT_EXPORT_NAME while the server is closing' };
    const name = decodeString(data);
    if (name === null) return { kind: 'disconnect', reason: 'NBD_OPT_EXPORT_NAME with an invalid name' };
    const entry = this.host.findExport(name);
    if (entry === undefined)
      return { kind: 'disconnect', reason: `NBD_OPT_EXPORT_NAME for unknown export '${name}'` };
    const padding = this.noZeroes ? 0 : EXPORT_NAME_REPLY_PADDING_BYTES;
    const bytes = Buffer.alloc(EXPORT_NAME_REPLY_BYTES + padding);
    bytes.writeBigUInt64BE(BigInt(entry.device.sizeBytes), 0);
    bytes.writeUInt16BE(transmissionFlagsFor(entry, this.structuredReplies), 8);
    this.write(bytes);
    return this.enterTransmission(entry);
  }

  private list(option: number, data: Buffer): OptionOutcome {
    if (data.length !== 0) return this.refuse(option, Reply.ERR_INVALID, 'NBD_OPT_LIST takes no data');
    for (const entry of this.host.listExports()) {
      const payload = Buffer.alloc(4 + entry.nameBytes.length);
      payload.writeUInt32BE(entry.nameBytes.length, 0);
      entry.nameBytes.copy(payload, 4);
      this.reply(option, Reply.SERVER, payload);
    }
    this.reply(option, Reply.ACK);
    return CONTINUE;
  }

  /** NBD_OPT_INFO and NBD_OPT_GO: u32 name length, name, u16 request count, u16 requests. */
  private infoOrGo(option: number, data: Buffer): OptionOutcome {
    if (data.length < 6) return this.refuse(option, Reply.ERR_INVALID, 'option data shorter than 6 bytes');
    const nameLength = data.readUInt32BE(0);
    if (nameLength > data.length - 6)
      return this.refuse(option, Reply.ERR_INVALID, 'name length beyond the option');
    const requestCount = data.readUInt16BE(4 + nameLength);
    if (data.length !== 6 + nameLength + 2 * requestCount) {
      return this.refuse(
        option,
        Reply.ERR_INVALID,
        'information request count does not match the option length',
      );
    }
    const name = decodeString(data.subarray(4, 4 + nameLength));
    if (name === null) return this.refuse(option, Reply.ERR_INVALID, 'the export name is not a valid string');
    const entry = this.host.findExport(name);
    if (entry === undefined) return this.refuse(option, Reply.ERR_UNKNOWN, `no export named '${name}'`);
    let wantsName = false;
    let wantsDescription = false;
    for (let index = 0; index < requestCount; index++) {
      const request = data.readUInt16BE(6 + nameLength + 2 * index);
      if (request === Info.NAME) wantsName = true;
      if (request === Info.DESCRIPTION) wantsDescription = true;
    }
    const exportInfo = Buffer.alloc(12);
    exportInfo.writeUInt16BE(Info.EXPORT, 0);
    exportInfo.writeBigUInt64BE(BigInt(entry.device.sizeBytes), 2);
    exportInfo.writeUInt16BE(transmissionFlagsFor(entry, this.structuredReplies), 10);
    this.reply(option, Reply.INFO, exportInfo);
    // Block size constraints are always sent: they differ from the protocol's defaults
    // (minimum 1), and clients that did not ask are refused unaligned requests cleanly.
    const blockSize = Buffer.alloc(14);
    blockSize.writeUInt16BE(Info.BLOCK_SIZE, 0);
    blockSize.writeUInt32BE(MINIMUM_BLOCK_BYTES, 2);
    blockSize.writeUInt32BE(PREFERRED_BLOCK_BYTES, 6);
    blockSize.writeUInt32BE(MAXIMUM_PAYLOAD_BYTES, 10);
    this.reply(option, Reply.INFO, blockSize);
    if (wantsName) this.reply(option, Reply.INFO, infoString(Info.NAME, entry.nameBytes));
    if (wantsDescription) {
      this.reply(option, Reply.INFO, infoString(Info.DESCRIPTION, Buffer.from(entry.description, 'utf8')));
    }
    this.reply(option, Reply.ACK);
    return option === Option.GO ? this.enterTransmission(entry) : CONTINUE;
  }

  /**
   * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: u32 name length, name, u32 query
   * count, then each query as u32 length and string. The one context is base:allocation.
   */
  private metaContext(option: number, data: Buffer): OptionOutcome {
    const setting = option === Option.SET_META_CONTEXT;
    if (setting) this.baseAllocationExport = null; // a SET replaces the selection, even when it fails
    if (!this.structuredReplies) {
      return this.refuse(option, Reply.ERR_INVALID, 'metadata contexts need structured replies first');
    }
    if (data.length < 8) return this.refuse(option, Reply.ERR_INVALID, 'option data shorter than 8 bytes');
    const nameLength = data.readUInt32BE(0);
    if (nameLength > data.length - 8)
      return this.refuse(option, Reply.ERR_INVALID, 'name length beyond the option');
    const name = decodeString(data.subarray(4, 4 + nameLength));
    if (name === null) return this.refuse(option, Reply.ERR_INVALID, 'the export name is not a valid string');
    const queryCount = data.readUInt32BE(4 + nameLength);
    if (queryCount > META_QUERIES_LIMIT) {
      return this.refuse(option, Reply.ERR_TOO_BIG, `at most ${META_QUERIES_LIMIT} queries per option`);
    }
    let position = 8 + nameLength;
    let selectsBaseAllocation = !setting && queryCount === 0;
    for (let index = 0; index < queryCount; index++) {
      if (data.length - position < 4)
        return this.refuse(option, Reply.ERR_INVALID, 'query beyond the option');
      const queryLength = data.readUInt32BE(position);
      position += 4;
      if (queryLength > data.length - position)
        return this.refuse(option, Reply.ERR_INVALID, 'query beyond the option');
      const query = decodeString(data.subarray(position, position + queryLength));
      position += queryLength;
      if (query === null) return this.refuse(option, Reply.ERR_INVALID, 'a query is not a valid string');
      // Queries of other namespaces, and unknown leaf names in base:, are ignored (the protocol's MUST).
      if (query === BASE_ALLOCATION_CONTEXT_NAME || (!setting && query === 'base:'))
        selectsBaseAllocation = true;
    }
    if (position !== data.length) return this.refuse(option, Reply.ERR_INVALID, 'bytes after the last query');
    const entry = this.host.findExport(name);
    if (entry === undefined) return this.refuse(option, Reply.ERR_UNKNOWN, `no export named '${name}'`);
    if (selectsBaseAllocation) {
      const contextName = Buffer.from(BASE_ALLOCATION_CONTEXT_NAME, 'utf8');
      const payload = Buffer.alloc(4 + contextName.length);
      // LIST replies carry id 0 (reserved); SET replies carry the id block status replies use.
      payload.writeUInt32BE(setting ? BASE_ALLOCATION_CONTEXT_ID : 0, 0);
      contextName.copy(payload, 4);
      this.reply(option, Reply.META_CONTEXT, payload);
      if (setting) this.baseAllocationExport = name;
    }
    this.reply(option, Reply.ACK);
    return CONTINUE;
  }

  private enterTransmission(entry: NbdExport): OptionOutcome {
    return {
      kind: 'transmission',
      entry,
      structuredReplies: this.structuredReplies,
      baseAllocation: this.structuredReplies && this.baseAllocationExport === entry.name,
    };
  }

  private refuse(option: number, type: number, message: string): OptionOutcome {
    const text = Buffer.from(message, 'utf8');
    this.reply(option, type, text.subarray(0, STRING_LIMIT_BYTES));
    return CONTINUE;
  }

  private reply(option: number, type: number, payload?: Buffer): void {
    const payloadLength = payload === undefined ? 0 : payload.length;
    const bytes = Buffer.alloc(OPTION_REPLY_HEADER_BYTES + payloadLength);
    bytes.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    bytes.writeUInt32BE(option >>> 0, 8);
    bytes.writeUInt32BE(type >>> 0, 12);
    bytes.writeUInt32BE(payloadLength, 16);
    if (payload !== undefined) payload.copy(bytes, OPTION_REPLY_HEADER_BYTES);
    this.write(bytes);
  }
}

/** A protocol string: valid UTF-8, no NUL, at most 4096 bytes; null otherwise. */
export function decodeString(bytes: Uint8Array): string | null {
  if (bytes.length > STRING_LIMIT_BYTES || bytes.includes(0)) return null;
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

function infoString(type: number, text: Buffer): Buffer {
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(type, 0);
  text.copy(payload, 2);
  return payload;
}
