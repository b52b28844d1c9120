import { crc32c } from '../../native.ts';

/**
 * iSCSI header and data digests (RFC 7143 §11.1 and Appendix B): CRC32C over the header
 * (BHS + AHS) or over the data segment including its padding, sent as 4 bytes with the
 * least significant byte first.
 */

export type DigestKind = 'None' | 'CRC32C';

export function computeDigest(data: Uint8Array): number {
  return crc32c(data) >>> 0;
}

/** The digest of the concatenation of two parts (data segment and padding) without copying. */
export function computeDigestParts(first: Uint8Array, second: Uint8Array): number {
  return crc32c(second, crc32c(first)) >>> 0;
}

export function writeDigest(target: Buffer, offset: number, digest: number): void {
  target.writeUInt32LE(digest >>> 0, offset);
}

export function readDigest(source: Buffer, offset: number): number {
  return source.readUInt32LE(offset);
}
