/**
 * Wire constants of the NBD protocol (fixed newstyle handshake, simple and structured
 * replies, metadata contexts), and the limits this server enforces. Every value here is
 * fixed by the protocol, except the `*_LIMIT` / `*_BYTES` limits, which are Hornbill's.
 * All integers on the wire are big-endian.
 */

// ---- magics -----------------------------------------------------------------------------
/** 'NBDMAGIC': first 8 bytes the server sends. */
export const INIT_MAGIC = 0x4e42444d41474943n;
/** 'IHAVEOPT': newstyle magic, sent by the server after INIT_MAGIC and by the client before each option. */
export const OPTION_MAGIC = 0x49484156454f5054n;
/** Magic of every option reply in fixed newstyle negotiation. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// ---- handshake flags (server → client, 16 bits) ------------------------------------------
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

// ---- client flags (client → server, 32 bits) --------------------------------------------
export const ClientFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;
export const KNOWN_CLIENT_FLAGS = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;

// ---- transmission flags (16 bits) -------------------------------------------------------
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

// ---- options ----------------------------------------------------------------------------
export const Option = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

// ---- option reply types -----------------------------------------------------------------
const ERROR_BIT = 0x80000000;
export const Reply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: ERROR_BIT + 1,
  ERR_POLICY: ERROR_BIT + 2,
  ERR_INVALID: ERROR_BIT + 3,
  ERR_PLATFORM: ERROR_BIT + 4,
  ERR_TLS_REQD: ERROR_BIT + 5,
  ERR_UNKNOWN: ERROR_BIT + 6,
  ERR_SHUTDOWN: ERROR_BIT + 7,
  ERR_BLOCK_SIZE_REQD: ERROR_BIT + 8,
  ERR_TOO_BIG: ERROR_BIT + 9,
} as const;

// ---- NBD_REP_INFO information types ----------------------------------------------------
export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

// ---- commands ---------------------------------------------------------------------------
export const Command = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

export const CommandFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

// ---- structured replies -----------------------------------------------------------------
export const ReplyFlag = { DONE: 1 << 0 } as const;
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;

/** base:allocation status flags. */
export const AllocationState = {
  HOLE: 1 << 0,
  ZERO: 1 << 1,
} as const;

// ---- error values -----------------------------------------------------------------------
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrnoValue = (typeof NbdErrno)[keyof typeof NbdErrno];

// ---- sizes of fixed messages ------------------------------------------------------------
/** Server greeting: INIT_MAGIC, OPTION_MAGIC, 16-bit handshake flags. */
export const GREETING_BYTES = 18;
export const CLIENT_FLAGS_BYTES = 4;
/** Option header: magic (8), option (4), data length (4). */
export const OPTION_HEADER_BYTES = 16;
/** Option reply header: magic (8), option (4), reply type (4), data length (4). */
export const OPTION_REPLY_HEADER_BYTES = 20;
/** Request: magic (4), flags (2), type (2), handle (8), offset (8), length (4). */
export const REQUEST_BYTES = 28;
/** Simple reply: magic (4), error (4), handle (8). */
export const SIMPLE_REPLY_BYTES = 16;
/** Structured reply chunk header: magic (4), flags (2), type (2), handle (8), length (4). */
export const STRUCTURED_REPLY_HEADER_BYTES = 20;
/** Reply to NBD_OPT_EXPORT_NAME: size (8), flags (2), then 124 zero bytes unless NO_ZEROES. */
export const EXPORT_NAME_REPLY_BYTES = 10;
export const EXPORT_NAME_REPLY_PADDING_BYTES = 124;

// ---- Hornbill's limits (each one is advertised or documented in docs/nbd.md) ------------
/** Strings (export names, queries, messages) may not exceed this many bytes (the protocol's MUST). */
export const STRING_LIMIT_BYTES = 4096;
/** Largest option data the server reads into memory; larger options are skipped and refused. */
export const OPTION_DATA_LIMIT_BYTES = 64 * 1024;
/** Options per handshake; a client past this is treated as a denial of service and disconnected. */
export const OPTIONS_PER_HANDSHAKE_LIMIT = 1024;
/** Bytes of oversized options skipped per handshake before the client is disconnected. */
export const SKIPPED_OPTION_BYTES_LIMIT = 1024 * 1024;
/** Metadata queries in one LIST/SET_META_CONTEXT option. */
export const META_QUERIES_LIMIT = 128;
/** Minimum block size: the device's sector (512); offsets and lengths must be multiples of it. */
export const MINIMUM_BLOCK_BYTES = 512;
/** Preferred block size: the store's checksum and copy-on-write unit. */
export const PREFERRED_BLOCK_BYTES = 4096;
/** Largest READ/WRITE/WRITE_ZEROES length (2^25, the size every client honours), advertised as the maximum block size. */
export const MAXIMUM_PAYLOAD_BYTES = 32 * 1024 * 1024;
/** TRIM and WRITE_ZEROES are passed to the device in pieces of at most this size, so that other I/O interleaves. */
export const ZERO_RANGE_PIECE_BYTES = 64 * 1024 * 1024;
/** A block status query covers at most this much (the reply may cover less than asked; clients ask again). */
export const BLOCK_STATUS_RANGE_LIMIT_BYTES = 256 * 1024 * 1024;
/** Descriptors in one base:allocation block status reply. */
export const BLOCK_STATUS_DESCRIPTORS_LIMIT = 1024;
/** The context id of base:allocation (ids are the server's choice; there is one context). */
export const BASE_ALLOCATION_CONTEXT_ID = 1;
export const BASE_ALLOCATION_CONTEXT_NAME = 'base:allocation';
