import { isHornbillError } from '../../errors.ts';
import { NbdErrno, type NbdErrnoValue } from './protocol.ts';

/**
 * The NBD error value for an error thrown by a BlockDevice, following the table in
 * `block-device.ts`:
 *   STORE_OUT_OF_RANGE, STORE_UNALIGNED, INVALID_ARGUMENT → EINVAL
 *   STORE_NO_SPACE                                        → ENOSPC
 *   STORE_CHECKSUM_MISMATCH, DEVICE_NOT_READY, anything else → EIO
 * The server itself answers ESHUTDOWN while it or the export is closing, EPERM for writes to
 * a read-only export, and EINVAL for requests it refuses before they reach the device.
 */
export function nbdErrorFor(error: unknown): NbdErrnoValue {
  if (!isHornbillError(error)) return NbdErrno.EIO;
  switch (error.code) {
    case 'STORE_OUT_OF_RANGE':
    case 'STORE_UNALIGNED':
    case 'INVALID_ARGUMENT':
      return NbdErrno.EINVAL;
    case 'STORE_NO_SPACE':
      return NbdErrno.ENOSPC;
    default:
      return NbdErrno.EIO;
  }
}

/** True for device errors that are expected in operation (bad request, full disk, no replica), false for bugs. */
export function isExpectedDeviceError(error: unknown): boolean {
  return isHornbillError(error) && error.code !== 'INTERNAL';
}

/** A short text for a structured error chunk: at most `limitBytes` bytes of UTF-8. */
export function errorMessageFor(error: unknown, limitBytes: number): Buffer {
  const text = isHornbillError(error)
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? `internal error: ${error.message}`
      : 'internal error';
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limitBytes) return bytes;
  // Cut on a character boundary so the message stays valid UTF-8.
  let end = limitBytes;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}
