/**
 * iSCSI text keys (RFC 7143 §6.1): `key=value` pairs, each ended by a NUL byte, in the data
 * segment of Login and Text PDUs.
 */

/** Largest key name (RFC 7143 §6.1: 63 bytes). */
export const MAX_KEY_BYTES = 63;
/** Largest value; CHAP challenges and responses are the longest values Hornbill accepts. */
export const MAX_VALUE_BYTES = 8192;
/** Largest text a single login or text negotiation may accumulate across continued PDUs. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** Largest number of keys in one negotiation. */
export const MAX_KEYS = 128;

const KEY_PATTERN = /^[A-Za-z0-9.\-+@_]+$/;

export type TextPairs = [key: string, value: string][];

export type ParseResult = { ok: true; pairs: TextPairs } | { ok: false; reason: string };

/** Parses text keys; rejects malformed, oversized and duplicated keys. */
export function parseTextKeys(data: Uint8Array): ParseResult {
  if (data.length > MAX_TEXT_BYTES) return { ok: false, reason: `text longer than ${MAX_TEXT_BYTES} bytes` };
  const pairs: TextPairs = [];
  const seen = new Set<string>();
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    if (end > start) {
      const item = Buffer.from(data.buffer, data.byteOffset + start, end - start).toString('utf8');
      const equals = item.indexOf('=');
      if (equals <= 0) return { ok: false, reason: `malformed key/value "${item.slice(0, 40)}"` };
      const key = item.slice(0, equals);
      const value = item.slice(equals + 1);
      if (key.length > MAX_KEY_BYTES || !KEY_PATTERN.test(key)) {
        return { ok: false, reason: `invalid key name "${key.slice(0, 40)}"` };
      }
      if (value.length > MAX_VALUE_BYTES) return { ok: false, reason: `value of ${key} too long` };
      if (seen.has(key)) return { ok: false, reason: `key ${key} sent twice` };
      if (pairs.length >= MAX_KEYS) return { ok: false, reason: `more than ${MAX_KEYS} keys` };
      seen.add(key);
      pairs.push([key, value]);
    }
    start = end + 1;
  }
  return { ok: true, pairs };
}

export function encodeTextKeys(pairs: Iterable<readonly [string, string]>): Buffer {
  const parts: string[] = [];
  for (const [key, value] of pairs) parts.push(`${key}=${value}\0`);
  return Buffer.from(parts.join(''), 'utf8');
}

/** Numeric values: decimal, or hex with 0x (RFC 7143 §6.1 "numerical-value"). */
export function parseNumber(value: string): number | null {
  if (/^[0-9]{1,15}$/.test(value)) return Number(value);
  if (/^0[xX][0-9a-fA-F]{1,12}$/.test(value)) return Number.parseInt(value.slice(2), 16);
  return null;
}

/** Binary values: 0x followed by hex digits, or 0b followed by base64 (RFC 7143 §6.1). */
export function parseBinary(value: string): Buffer | null {
  if (/^0[xX]([0-9a-fA-F]{2})+$/.test(value)) return Buffer.from(value.slice(2), 'hex');
  if (/^0[xX][0-9a-fA-F]+$/.test(value)) return Buffer.from(`0${value.slice(2)}`, 'hex');
  if (/^0[bB][A-Za-z0-9+/]+=*$/.test(value)) return Buffer.from(value.slice(2), 'base64');
  return null;
}
