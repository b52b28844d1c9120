/**
 * Byte sizes as Kubernetes quantities: `2Gi`, `512Mi`, `10G`, `4096`. Specs keep the text the
 * user wrote (so `kubectl get volumes.hornbill.io` shows `2Gi`); code works in bytes.
 */
import { HornbillError } from '../errors.ts';

/** What a size field's CRD schema accepts; the value check (integer bytes, range) is in code. */
export const BYTE_QUANTITY_PATTERN = '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$';

const SUFFIXES: Record<string, number> = {
  '': 1,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};
const QUANTITY = new RegExp(BYTE_QUANTITY_PATTERN);
const BINARY_SUFFIXES: [string, number][] = [
  ['Ei', 1024 ** 6],
  ['Pi', 1024 ** 5],
  ['Ti', 1024 ** 4],
  ['Gi', 1024 ** 3],
  ['Mi', 1024 ** 2],
  ['Ki', 1024],
];

/** The number of bytes, or undefined when the text is not a whole number of bytes below 2^53. */
export function parseByteQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const multiplier = SUFFIXES[match[2] ?? ''];
  const [whole, fraction = ''] = text.slice(0, text.length - (match[2]?.length ?? 0)).split('.');
  // Exact arithmetic: value = (whole * 10^digits + fraction) * multiplier / 10^digits.
  const scale = 10n ** BigInt(fraction.length);
  const numerator = (BigInt(whole) * scale + BigInt(fraction === '' ? '0' : fraction)) * BigInt(multiplier);
  if (numerator % scale !== 0n) return undefined;
  const bytes = numerator / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(bytes);
}

/** Like parseByteQuantity, but a bad value is a coded error naming `field`. */
export function requireByteQuantity(text: string, field: string): number {
  const bytes = parseByteQuantity(text);
  if (bytes === undefined) {
    throw new HornbillError('INVALID_ARGUMENT', `${field}: ${JSON.stringify(text)} is not a size in bytes`, {
      field,
      value: text,
    });
  }
  return bytes;
}

/** The shortest exact form: `2Gi` for 2147483648, `1536Mi`, or plain bytes when no binary unit divides. */
export function formatByteQuantity(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new HornbillError('INVALID_ARGUMENT', `${bytes} is not a byte count`, { bytes });
  }
  if (bytes === 0) return '0';
  for (const [suffix, multiplier] of BINARY_SUFFIXES) {
    if (bytes % multiplier === 0) return `${bytes / multiplier}${suffix}`;
  }
  return String(bytes);
}
