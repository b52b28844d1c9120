import { fromWire, HornbillError, type WireError } from '../../errors.ts';
import { crc32cBlocks } from '../../native.ts';
import { checksumOf } from '../../storage/checksum.ts';
import { BLOCK_SIZE } from '../../storage/constants.ts';
import type { LayerExtent } from '../../storage/replica-store.ts';

/**
 * Payload layouts (docs/wire-protocol.md). Data travels with checksums so that a block is
 * checked end to end: written by the engine, checked by the replica on arrival against the
 * checksums the replica computes anyway; read from disk, checked by the replica against its
 * index, then by the engine on arrival.
 *
 * Checksum section: for a block-aligned range, one CRC32C per 4 KiB block; otherwise one
 * CRC32C of the whole data.
 */
export function checksumSectionBytes(offsetBytes: number, lengthBytes: number): number {
  return isBlockAligned(offsetBytes, lengthBytes) ? (lengthBytes / BLOCK_SIZE) * 4 : 4;
}

export function isBlockAligned(offsetBytes: number, lengthBytes: number): boolean {
  return offsetBytes % BLOCK_SIZE === 0 && lengthBytes % BLOCK_SIZE === 0;
}

/** Block checksums of one payload, computed by one native call (16,384 blocks: 64 MiB at most). */
const sectionScratch = new Uint32Array(16384);

/** Fills `section` with the checksums of `data` for a range at `offsetBytes` (aligned: per block). */
export function writeChecksumSection(section: Uint8Array, offsetBytes: number, data: Uint8Array): void {
  const view = new DataView(section.buffer, section.byteOffset, section.byteLength);
  if (!isBlockAligned(offsetBytes, data.length)) {
    view.setUint32(0, checksumOf(data), true);
    return;
  }
  const blocks = data.length / BLOCK_SIZE;
  crc32cBlocks(data, 0, BLOCK_SIZE, blocks, sectionScratch, 0);
  for (let block = 0; block < blocks; block++) view.setUint32(block * 4, sectionScratch[block], true);
}

/**
 * Copies the first `count` checksums of an aligned write's checksum section (little-endian
 * CRC32Cs, at any byte offset) into `out` — the numbers a store compares or takes as its own.
 */
export function readChecksumSection(section: Uint8Array, out: Uint32Array, count: number): void {
  for (let block = 0, at = 0; block < count; block++, at += 4)
    out[block] =
      (section[at] | (section[at + 1] << 8) | (section[at + 2] << 16) | (section[at + 3] << 24)) >>> 0;
}

/**
 * Checks `data` against a checksum section; returns the index of the first bad block (or 0
 * for a whole-data checksum), or -1 when everything matches.
 */
export function findChecksumMismatch(section: Uint8Array, offsetBytes: number, data: Uint8Array): number {
  const view = new DataView(section.buffer, section.byteOffset, section.byteLength);
  if (!isBlockAligned(offsetBytes, data.length)) return view.getUint32(0, true) === checksumOf(data) ? -1 : 0;
  const blocks = data.length / BLOCK_SIZE;
  crc32cBlocks(data, 0, BLOCK_SIZE, blocks, sectionScratch, 0);
  for (let block = 0; block < blocks; block++) {
    if (view.getUint32(block * 4, true) !== sectionScratch[block]) return block;
  }
  return -1;
}

/** Largest JSON payload accepted (errors, control requests and results). */
export const MAX_JSON_PAYLOAD_BYTES = 4 * 1024 * 1024;

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** Parses a JSON payload; a coded INVALID_ARGUMENT error when it is not JSON or too big. */
export function decodeJson(payload: Uint8Array, what: string): unknown {
  if (payload.length > MAX_JSON_PAYLOAD_BYTES) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `${what}: JSON payload of ${payload.length} bytes is too large`,
    );
  }
  try {
    return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    throw new HornbillError('INVALID_ARGUMENT', `${what}: payload is not valid JSON`);
  }
}

/** Error responses carry the coded error as JSON; anything else becomes INTERNAL. */
export function encodeError(error: unknown): Buffer {
  const wire: WireError =
    error instanceof HornbillError
      ? error.toWire()
      : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error), details: {} };
  return encodeJson(wire);
}

export function decodeError(payload: Uint8Array): HornbillError {
  try {
    const wire = decodeJson(payload, 'error response') as WireError;
    if (typeof wire?.code !== 'string' || typeof wire.message !== 'string') throw new Error('not an error');
    return fromWire({ code: wire.code, message: wire.message, details: wire.details ?? {} });
  } catch {
    return new HornbillError('INTERNAL', 'a replica sent an error response that cannot be read');
  }
}

const EXTENT_STATE_DATA = 1;
const EXTENT_STATE_ZERO = 2;

/** Extents: u32 count, then per extent u32 start block, u32 block count, u32 state, and for data u32 checksums. */
export function encodeExtents(extents: LayerExtent[]): Buffer {
  let bytes = 4;
  for (const extent of extents) bytes += 12 + (extent.state === 'data' ? extent.blockCount * 4 : 0);
  const payload = Buffer.alloc(bytes);
  payload.writeUInt32LE(extents.length, 0);
  let at = 4;
  for (const extent of extents) {
    payload.writeUInt32LE(extent.startBlock, at);
    payload.writeUInt32LE(extent.blockCount, at + 4);
    payload.writeUInt32LE(extent.state === 'data' ? EXTENT_STATE_DATA : EXTENT_STATE_ZERO, at + 8);
    at += 12;
    if (extent.state === 'data') {
      for (const checksum of extent.checksums!) {
        payload.writeUInt32LE(checksum, at);
        at += 4;
      }
    }
  }
  return payload;
}

export function decodeExtents(payload: Uint8Array): LayerExtent[] {
  const bad = () => new HornbillError('INVALID_ARGUMENT', 'malformed extents payload');
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (payload.length < 4) throw bad();
  const count = view.getUint32(0, true);
  const extents: LayerExtent[] = [];
  let at = 4;
  for (let index = 0; index < count; index++) {
    if (at + 12 > payload.length) throw bad();
    const startBlock = view.getUint32(at, true);
    const blockCount = view.getUint32(at + 4, true);
    const state = view.getUint32(at + 8, true);
    at += 12;
    if (state === EXTENT_STATE_ZERO) {
      extents.push({ startBlock, blockCount, state: 'zero', checksums: null });
    } else if (state === EXTENT_STATE_DATA) {
      if (at + blockCount * 4 > payload.length) throw bad();
      const checksums = new Uint32Array(blockCount);
      for (let block = 0; block < blockCount; block++)
        checksums[block] = view.getUint32(at + block * 4, true);
      at += blockCount * 4;
      extents.push({ startBlock, blockCount, state: 'data', checksums });
    } else {
      throw bad();
    }
  }
  if (at !== payload.length) throw bad();
  return extents;
}

/** A WRITE_LAYER request: the layer, then per block a state and checksum, then data of the DATA blocks only. */
export interface LayerWrite {
  layer: string;
  states: Uint8Array;
  checksums: Uint32Array;
  /** The data of the DATA blocks, in order, packed. */
  data: Uint8Array;
}

const pad4 = (bytes: number) => (bytes + 3) & ~3;

export function encodeLayerWrite(write: LayerWrite): Buffer[] {
  const name = Buffer.from(write.layer, 'utf8');
  const blocks = write.states.length;
  const head = Buffer.alloc(pad4(2 + name.length) + pad4(blocks) + blocks * 4);
  head.writeUInt16LE(name.length, 0);
  name.copy(head, 2);
  let at = pad4(2 + name.length);
  head.set(write.states, at);
  at += pad4(blocks);
  for (let block = 0; block < blocks; block++) head.writeUInt32LE(write.checksums[block], at + block * 4);
  return [head, Buffer.from(write.data.buffer, write.data.byteOffset, write.data.byteLength)];
}

/** Decodes a WRITE_LAYER payload for `blockCount` blocks; views into the payload, no copies of data. */
export function decodeLayerWrite(payload: Buffer, blockCount: number): LayerWrite {
  const bad = (why: string) => new HornbillError('INVALID_ARGUMENT', `malformed layer write: ${why}`);
  if (payload.length < 2) throw bad('too short');
  const nameLength = payload.readUInt16LE(0);
  if (nameLength === 0 || nameLength > 128) throw bad('layer name length');
  let at = pad4(2 + nameLength);
  if (payload.length < at + pad4(blockCount) + blockCount * 4) throw bad('too short for its blocks');
  const layer = payload.toString('utf8', 2, 2 + nameLength);
  const states = payload.subarray(at, at + blockCount);
  at += pad4(blockCount);
  const checksums = new Uint32Array(blockCount);
  for (let block = 0; block < blockCount; block++) checksums[block] = payload.readUInt32LE(at + block * 4);
  at += blockCount * 4;
  let dataBlocks = 0;
  for (const state of states) if (state === 1) dataBlocks++;
  if (payload.length - at !== dataBlocks * BLOCK_SIZE)
    throw bad('data length does not match the data blocks');
  return { layer, states, checksums, data: payload.subarray(at) };
}
