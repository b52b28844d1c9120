import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { crc32c as crc32cPortable } from '@node-rs/crc32';

/**
 * Hornbill's native helpers (native/crc32c.c, built by `npm ci` with node-gyp): a CRC32C
 * by carry-less multiplication on AVX-512 where the CPU has VPCLMULQDQ (native/crc32c-fold.c,
 * about 54 GB/s here over 4 KiB blocks), otherwise three crc32-instruction lanes at once
 * (about 26 GB/s, against 6 GB/s for @node-rs/crc32), and checksums many blocks in one call. When the addon was not built (no
 * compiler on the machine), the portable @node-rs/crc32 is used: same results, slower.
 */
interface NativeModule {
  crc32c(data: Uint8Array, offset: number, length: number, seed?: number): number;
  crc32cBlocks(
    data: Uint8Array,
    offset: number,
    blockSize: number,
    blockCount: number,
    out: Uint32Array,
    outOffset: number,
    stride?: number,
  ): void;
  hardware: boolean;
  /** AVX-512 VPCLMULQDQ folding is used for 256 bytes and more (checked against the table at load). */
  folding?: boolean;
  /** The address of data[0] modulo 4096 (native/memory-alignment.c). */
  memoryAlignment?(data: Uint8Array): number;
}

function load(): NativeModule | undefined {
  if (process.env.HORNBILL_NATIVE === '0') return undefined;
  const file = path.join(import.meta.dirname, '..', 'build', 'Release', 'hornbill_native.node');
  if (!fs.existsSync(file)) return undefined;
  try {
    return createRequire(import.meta.url)(file) as NativeModule;
  } catch {
    return undefined;
  }
}

const native = load();

/** Which CRC32C implementation runs (benchmarks report it). */
export const checksumImplementation: string =
  native === undefined
    ? 'portable (@node-rs/crc32)'
    : native.folding === true
      ? 'native, AVX-512 VPCLMULQDQ folding'
      : native.hardware
        ? 'native, SSE4.2, three lanes'
        : 'native, table';

/**
 * CRC32C of `length` bytes of `data` from `offset`; `seed` is the CRC of the bytes before
 * them, to checksum a concatenation in parts (0: a fresh CRC).
 */
export const crc32cRange: (data: Uint8Array, offset: number, length: number, seed?: number) => number =
  native !== undefined
    ? native.crc32c
    : (data, offset, length, seed = 0) =>
        crc32cPortable(
          offset === 0 && length === data.length ? data : data.subarray(offset, offset + length),
          seed,
        ) >>> 0;

/** CRC32C of all of `data`, continuing from `seed` (the signature of @node-rs/crc32's crc32c). */
export function crc32c(data: Uint8Array, seed = 0): number {
  return crc32cRange(data, 0, data.length, seed);
}

/**
 * CRC32C of each of `blockCount` blocks of `blockSize` bytes, block i starting at `offset` +
 * i × `stride` (default: blocks back to back), into `out` from `outOffset`.
 */
export const crc32cBlocks: (
  data: Uint8Array,
  offset: number,
  blockSize: number,
  blockCount: number,
  out: Uint32Array,
  outOffset: number,
  stride?: number,
) => void =
  native !== undefined
    ? native.crc32cBlocks
    : (data, offset, blockSize, blockCount, out, outOffset, stride = blockSize) => {
        for (let block = 0; block < blockCount; block++) {
          const start = offset + block * stride;
          out[outOffset + block] = crc32cPortable(data.subarray(start, start + blockSize)) >>> 0;
        }
      };

/** The alignment O_DIRECT asks of memory, file offsets and lengths here (a 4 KiB block). */
export const DIRECT_IO_ALIGNMENT = 4096;

/**
 * A buffer of `bytes` whose first byte lies on a 4096-byte boundary of memory, for writes
 * through a descriptor opened with O_DIRECT; undefined when the native addon (which tells
 * where memory lies) is not built, and then such writes are not made.
 */
export function alignedBuffer(bytes: number): Buffer | undefined {
  const alignment = native?.memoryAlignment;
  if (alignment === undefined) return undefined;
  const backing = Buffer.alloc(bytes + DIRECT_IO_ALIGNMENT);
  const skip = (DIRECT_IO_ALIGNMENT - alignment(backing)) % DIRECT_IO_ALIGNMENT;
  return backing.subarray(skip, skip + bytes);
}

/** Whether `data` starts on a 4096-byte boundary of memory (false when that cannot be told). */
export function isMemoryAligned(data: Uint8Array): boolean {
  const alignment = native?.memoryAlignment;
  return alignment !== undefined && alignment(data) === 0;
}
