import { HornbillError } from '../errors.ts';

/**
 * Validates the byte range of an I/O: whole numbers, not negative, multiples of the sector
 * size, at most `maxLength` long, inside the volume. The replica store and the engine both
 * answer bad ranges with these codes (INVALID_ARGUMENT, STORE_UNALIGNED, STORE_OUT_OF_RANGE),
 * which the frontends map to protocol errors.
 */
export function validateIoRange(
  offsetBytes: number,
  lengthBytes: number,
  limits: { sizeBytes: number; sectorSize: number; maxLength: number },
): void {
  if (
    !Number.isSafeInteger(offsetBytes) ||
    !Number.isSafeInteger(lengthBytes) ||
    offsetBytes < 0 ||
    lengthBytes < 0
  ) {
    throw new HornbillError('INVALID_ARGUMENT', 'offset and length must be non-negative integers', {
      offsetBytes,
      lengthBytes,
    });
  }
  if (offsetBytes % limits.sectorSize !== 0 || lengthBytes % limits.sectorSize !== 0) {
    throw new HornbillError(
      'STORE_UNALIGNED',
      `offset and length must be multiples of ${limits.sectorSize} bytes`,
      {
        offsetBytes,
        lengthBytes,
      },
    );
  }
  if (lengthBytes > limits.maxLength) {
    throw new HornbillError('INVALID_ARGUMENT', `a single I/O is limited to ${limits.maxLength} bytes`, {
      lengthBytes,
    });
  }
  if (offsetBytes + lengthBytes > limits.sizeBytes) {
    throw new HornbillError('STORE_OUT_OF_RANGE', 'the I/O reaches beyond the end of the volume', {
      offsetBytes,
      lengthBytes,
      sizeBytes: limits.sizeBytes,
    });
  }
}
