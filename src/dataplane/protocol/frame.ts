import { crc32cRange } from '../../native.ts';

/**
 * Frames between an engine and a replica (docs/wire-protocol.md). Every frame is a 32-byte
 * little-endian header followed by `payloadLength` bytes:
 *
 *   0  u16 magic 0x4842 ("HB")      2 u8 version (1)      3 u8 op
 *   4  u32 sequence: chosen by the requester, echoed by the response
 *   8  u32 offset in bytes, low     12 u32 offset, high (below 2^21: offsets stay exact)
 *   16 u32 length: bytes the operation covers (read, write, unmap)
 *   20 u32 payload length
 *   24 u32 flags
 *   28 u32 CRC32C of bytes 0..27
 *
 * The header checksum makes garbage and misframing fail at once instead of being read as a
 * huge length; payload integrity is covered by the per-block checksums payloads carry.
 */
export const FRAME_HEADER_BYTES = 32;
export const FRAME_MAGIC = 0x4842;
export const PROTOCOL_VERSION = 1;

export const Op = {
  /** Request: read `length` bytes at `offset`. Response payload: checksums, then data. */
  READ: 1,
  /** Request payload: checksums, then `length` bytes of data to write at `offset`. */
  WRITE: 2,
  /** Request: unmap `length` bytes at `offset`. */
  UNMAP: 3,
  /** Request: make every completed write durable. */
  FLUSH: 4,
  /** Request: liveness probe; the response is empty. */
  PING: 5,
  /** Request payload: UTF-8 JSON {method, params}. Response payload: UTF-8 JSON result. */
  CONTROL: 6,
  /** Request: extents of a layer (payload: JSON {layer, startBlock, blockCount}); response: binary extents. */
  LAYER_EXTENTS: 7,
  /** Request: one layer's own blocks (payload: JSON {layer}, offset/length = block range in bytes); response: checksums, data. */
  READ_LAYER: 8,
  /** Request payload: u16 name length, name, states (1 byte per block, padded to 4), checksums, data of DATA blocks. */
  WRITE_LAYER: 9,
  /** Response: success, with the request's result in the payload. */
  OK: 64,
  /** Response: failure; payload is UTF-8 JSON {code, message, details}. */
  ERROR: 65,
} as const;
export type OpValue = (typeof Op)[keyof typeof Op];

const KNOWN_OPS = new Set<number>(Object.values(Op));

export const FrameFlag = {
  /** WRITE: durable when acknowledged (force unit access). */
  FUA: 1,
  /** WRITE: a repair of a block read bad on this replica; does not count as a new revision. */
  REPAIR: 2,
} as const;

/** Largest payload a frame may carry: 64 MiB of data plus its checksums and a little framing. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024 + 64 * 1024;
/** Largest I/O one frame may describe (a whole-volume unmap is split by the engine). */
export const MAX_FRAME_LENGTH_BYTES = 0xffff_ffff;
/** Offsets are exact in a double below 2^53 bytes. */
const OFFSET_HIGH_LIMIT = 2 ** 21;

export interface FrameHeader {
  op: OpValue;
  sequence: number;
  offsetBytes: number;
  lengthBytes: number;
  payloadLength: number;
  flags: number;
}

/** Writes a header into `target` at `at` (no allocation: byte stores and one native CRC call). */
export function encodeHeader(target: Uint8Array, at: number, header: FrameHeader): void {
  target[at] = FRAME_MAGIC & 0xff;
  target[at + 1] = FRAME_MAGIC >>> 8;
  target[at + 2] = PROTOCOL_VERSION;
  target[at + 3] = header.op;
  storeUint32(target, at + 4, header.sequence);
  storeUint32(target, at + 8, header.offsetBytes);
  storeUint32(target, at + 12, Math.floor(header.offsetBytes / 2 ** 32));
  storeUint32(target, at + 16, header.lengthBytes);
  storeUint32(target, at + 20, header.payloadLength);
  storeUint32(target, at + 24, header.flags);
  storeUint32(target, at + 28, crc32cRange(target, at, 28));
}

/** Little-endian u32 (the low 32 bits of `value`). */
function storeUint32(target: Uint8Array, at: number, value: number): void {
  target[at] = value;
  target[at + 1] = value >>> 8;
  target[at + 2] = value >>> 16;
  target[at + 3] = value >>> 24;
}

function loadUint32(source: Uint8Array, at: number): number {
  return (source[at] | (source[at + 1] << 8) | (source[at + 2] << 16) | (source[at + 3] << 24)) >>> 0;
}

/** Why a header was refused: the connection that sent it is closed with this reason. */
export type HeaderProblem = string;

/**
 * Decodes and validates a header in place into `into`; returns a problem description, or
 * undefined when the header is well-formed. Never throws on any input.
 */
export function decodeHeader(source: Uint8Array, at: number, into: FrameHeader): HeaderProblem | undefined {
  if (source.length - at < FRAME_HEADER_BYTES) return 'truncated header';
  const magic = source[at] | (source[at + 1] << 8);
  if (magic !== FRAME_MAGIC) return `bad magic 0x${magic.toString(16)}`;
  if (loadUint32(source, at + 28) !== crc32cRange(source, at, 28)) return 'header checksum mismatch';
  if (source[at + 2] !== PROTOCOL_VERSION) return `unsupported protocol version ${source[at + 2]}`;
  const op = source[at + 3];
  if (!KNOWN_OPS.has(op)) return `unknown op ${op}`;
  const offsetHigh = loadUint32(source, at + 12);
  if (offsetHigh >= OFFSET_HIGH_LIMIT) return 'offset beyond 2^53';
  const payloadLength = loadUint32(source, at + 20);
  if (payloadLength > MAX_PAYLOAD_BYTES)
    return `payload of ${payloadLength} bytes exceeds ${MAX_PAYLOAD_BYTES}`;
  into.op = op as OpValue;
  into.sequence = loadUint32(source, at + 4);
  into.offsetBytes = loadUint32(source, at + 8) + offsetHigh * 2 ** 32;
  into.lengthBytes = loadUint32(source, at + 16);
  into.payloadLength = payloadLength;
  into.flags = loadUint32(source, at + 24);
  return undefined;
}

export function emptyHeader(): FrameHeader {
  return { op: Op.PING, sequence: 0, offsetBytes: 0, lengthBytes: 0, payloadLength: 0, flags: 0 };
}
