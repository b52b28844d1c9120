/** The operation log shared by crash-writer.ts (child) and crash.test.ts (parent). */

export const LOG_RECORD_BYTES = 16;
export const LOG_READY = 1;
export const LOG_WRITE = 2;
export const LOG_UNMAP = 3;
export const LOG_ACK = 4;
export const LOG_FLUSH_START = 5;
export const LOG_FLUSH_DONE = 6;

export interface LogRecord {
  type: number;
  a: number;
  b: number;
  c: number;
}

export function parseLog(data: Buffer): LogRecord[] {
  const records: LogRecord[] = [];
  for (let offset = 0; offset + LOG_RECORD_BYTES <= data.length; offset += LOG_RECORD_BYTES) {
    records.push({
      type: data.readUInt32LE(offset),
      a: data.readUInt32LE(offset + 4),
      b: data.readUInt32LE(offset + 8),
      c: data.readUInt32LE(offset + 12),
    });
  }
  return records;
}

/** Writes the content of `sector` at `version` (never all zeros) into `target` at `offset`. */
export function sectorContent(sector: number, version: number, target: Buffer, offset: number): void {
  target.writeUInt32LE(sector, offset);
  target.writeUInt32LE(version, offset + 4);
  let state = (sector * 2654435761) ^ (version * 40503) ^ 0x9e3779b9;
  for (let index = 8; index < 512; index += 4) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    target.writeUInt32LE(state, offset + index);
  }
}

const expected = Buffer.alloc(512);

/** The version a sector holds (0 for zeros), or -1 when it is not exactly some version's content. */
export function sectorVersion(sector: number, data: Buffer, offset: number): number {
  const version = data.readUInt32LE(offset + 4);
  if (data.readUInt32LE(offset) === 0 && version === 0) {
    for (let index = 0; index < 512; index++) if (data[offset + index] !== 0) return -1;
    return 0;
  }
  if (data.readUInt32LE(offset) !== sector) return -1;
  sectorContent(sector, version, expected, 0);
  return expected.equals(data.subarray(offset, offset + 512)) ? version : -1;
}
