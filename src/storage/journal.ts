import fs from 'node:fs';
import path from 'node:path';
import { assert } from '../assert.ts';
import { fromSystemError, HornbillError } from '../errors.ts';
import { crc32cBlocks } from '../native.ts';
import { checksumOf } from './checksum.ts';
import type { BlockStateValue } from './constants.ts';

/**
 * The intent journal: before a block is written into a layer file, a 32-byte record naming
 * (layer, block, new state, checksum of the new data) is appended here. Recovery replays
 * each record only when the data on disk matches its checksum, so index, data and
 * checksums always agree after a crash (docs/on-disk-format.md has the argument).
 *
 * File: a 64-byte header, then records. Record layout (little-endian):
 *   0  u32 CRC32C of bytes 4..31
 *   4  u8  kind (1 = operation, 2 = block)   5 u8 state   6 u16 zero
 *   8  u32 sequence number within this journal, starting at 1, +1 per record
 *   12 u32 operation: revision counter low    | block: layer id
 *   16 u32 operation: revision counter high   | block: block number low
 *   20 u32 zero                               | block: block number high
 *   24 u32 zero                               | block: CRC32C of the block's data
 *   28 u32 journal generation (low 32 bits): binds the record to its file
 */
export const JOURNAL_HEADER_BYTES = 64;
export const JOURNAL_RECORD_BYTES = 32;
const JOURNAL_MAGIC = 'HBJOURN1';
const KIND_OPERATION = 1;
const KIND_BLOCK = 2;
/** Records buffered per append; one write op of MAX_IO_BLOCKS blocks fits with room to spare. */
const BUFFER_RECORDS = 32768;

export function journalFileName(generation: number): string {
  return `${String(generation).padStart(10, '0')}.journal`;
}

export function journalGenerationFromFileName(name: string): number | undefined {
  const match = /^(\d{10,})\.journal$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}

export interface JournalBlockRecord {
  sequence: number;
  layerId: number;
  block: number;
  state: BlockStateValue;
  checksum: number;
}

export interface JournalReplay {
  blocks: JournalBlockRecord[];
  /** Highest revision counter among operation records, or -1 when there is none. */
  revisionCounter: number;
}

/** An open journal file that records are appended to. */
export class Journal {
  readonly generation: number;
  readonly path: string;
  private fd: number;
  private position = JOURNAL_HEADER_BYTES;
  private sequence = 0;
  private readonly buffer = Buffer.alloc(BUFFER_RECORDS * JOURNAL_RECORD_BYTES);
  private readonly view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
  private pending = 0;
  private readonly seals = new Uint32Array(BUFFER_RECORDS);
  private unsynced = false;
  private appendable = true;

  private constructor(directory: string, generation: number, fd: number) {
    this.generation = generation;
    this.path = path.join(directory, journalFileName(generation));
    this.fd = fd;
  }

  /** Creates a new, empty journal file for `generation` (replacing a leftover file of that generation). */
  static create(directory: string, generation: number): Journal {
    const filePath = path.join(directory, journalFileName(generation));
    let fd = -1;
    try {
      fd = fs.openSync(filePath, 'w+');
      const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
      header.write(JOURNAL_MAGIC, 0, 'latin1');
      header.writeUInt32LE(1, 8);
      header.writeUInt32LE(generation >>> 0, 12);
      header.writeUInt32LE(Math.floor(generation / 2 ** 32), 16);
      header.writeUInt32LE(checksumOf(header.subarray(0, 60)), 60);
      fs.writeSync(fd, header, 0, JOURNAL_HEADER_BYTES, 0);
      fs.fdatasyncSync(fd);
    } catch (error) {
      if (fd >= 0) fs.closeSync(fd);
      throw fromSystemError(error, `creating journal ${filePath}`);
    }
    return new Journal(directory, generation, fd);
  }

  /**
   * Opens an existing journal without truncating it, only so that a checkpoint can rotate
   * past it (recovery replays a journal, then checkpoints). Appending to it is refused.
   */
  static attach(directory: string, generation: number): Journal {
    const filePath = path.join(directory, journalFileName(generation));
    let fd: number;
    try {
      fd = fs.openSync(filePath, 'r');
    } catch (error) {
      throw fromSystemError(error, `opening journal ${filePath}`);
    }
    const journal = new Journal(directory, generation, fd);
    journal.appendable = false;
    return journal;
  }

  get sizeBytes(): number {
    return this.position + this.pending * JOURNAL_RECORD_BYTES;
  }

  /** Queues an operation record carrying the revision counter after the operation. */
  addOperation(revisionCounter: number): void {
    const offset = this.reserve();
    this.view.setUint32(offset + 4, KIND_OPERATION, true);
    this.view.setUint32(offset + 12, revisionCounter >>> 0, true);
    this.view.setUint32(offset + 16, Math.floor(revisionCounter / 2 ** 32), true);
    this.view.setUint32(offset + 20, 0, true);
    this.view.setUint32(offset + 24, 0, true);
  }

  /** Queues a block record. */
  addBlock(layerId: number, block: number, state: BlockStateValue, checksum: number): void {
    const offset = this.reserve();
    this.view.setUint32(offset + 4, KIND_BLOCK | (state << 8), true);
    this.view.setUint32(offset + 12, layerId, true);
    this.view.setUint32(offset + 16, block >>> 0, true);
    this.view.setUint32(offset + 20, Math.floor(block / 2 ** 32), true);
    this.view.setUint32(offset + 24, checksum, true);
  }

  /** Seals and writes the queued records with one write(2). They are crash-safe (kill -9) once this returns. */
  commit(): void {
    if (this.pending === 0) return;
    this.sealPending();
    const length = this.pending * JOURNAL_RECORD_BYTES;
    let done = 0;
    try {
      while (done < length) {
        done += fs.writeSync(this.fd, this.buffer, done, length - done, this.position + done);
      }
    } catch (error) {
      // The records may be partly on disk: recovery replays only those whose data landed.
      this.position += done - (done % JOURNAL_RECORD_BYTES);
      this.pending = 0;
      throw fromSystemError(error, `appending to journal ${this.path}`);
    }
    this.position += length;
    this.pending = 0;
    this.unsynced = true;
  }

  /** Makes every committed record durable (fdatasync). */
  datasync(): void {
    assert(this.pending === 0, 'datasync with uncommitted journal records');
    if (!this.unsynced) return;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (error) {
      throw fromSystemError(error, `syncing journal ${this.path}`);
    }
    this.unsynced = false;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  private reserve(): number {
    assert(this.appendable, 'append to an attached journal');
    if (this.pending === BUFFER_RECORDS) this.commit();
    const offset = this.pending * JOURNAL_RECORD_BYTES;
    this.pending++;
    this.sequence++;
    this.view.setUint32(offset + 8, this.sequence, true);
    this.view.setUint32(offset + 28, this.generation >>> 0, true);
    return offset;
  }

  /** Puts each queued record's CRC32C (of its bytes 4..31) in its first four bytes: one native call for all. */
  private sealPending(): void {
    const count = this.pending;
    crc32cBlocks(this.buffer, 4, JOURNAL_RECORD_BYTES - 4, count, this.seals, 0, JOURNAL_RECORD_BYTES);
    for (let index = 0; index < count; index++)
      this.view.setUint32(index * JOURNAL_RECORD_BYTES, this.seals[index], true);
  }
}

/**
 * Reads every intact record of a journal file. The journal ends at the first record that
 * is not intact (a torn or never-written tail). If an intact record of this journal
 * follows a damaged one, the damage is not a torn tail but corruption of records that may
 * have been flushed, and replay refuses with STORE_JOURNAL_CORRUPT rather than silently
 * dropping them.
 */
export function readJournal(filePath: string, generation: number): JournalReplay {
  let data: Buffer;
  try {
    data = fs.readFileSync(filePath);
  } catch (error) {
    throw fromSystemError(error, `reading journal ${filePath}`);
  }
  const corrupt = (reason: string, details: Record<string, unknown> = {}) =>
    new HornbillError('STORE_JOURNAL_CORRUPT', `journal ${filePath}: ${reason}`, {
      path: filePath,
      ...details,
    });
  if (data.length < JOURNAL_HEADER_BYTES) throw corrupt('shorter than its header');
  if (data.toString('latin1', 0, 8) !== JOURNAL_MAGIC) throw corrupt('bad magic');
  if (data.readUInt32LE(60) !== checksumOf(data.subarray(0, 60))) throw corrupt('header checksum mismatch');
  const headerGeneration = data.readUInt32LE(12) + data.readUInt32LE(16) * 2 ** 32;
  if (headerGeneration !== generation) throw corrupt('header names another generation', { headerGeneration });

  const replay: JournalReplay = { blocks: [], revisionCounter: -1 };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let offset = JOURNAL_HEADER_BYTES;
  let expected = 1;
  for (; offset + JOURNAL_RECORD_BYTES <= data.length; offset += JOURNAL_RECORD_BYTES) {
    const record = decodeRecord(view, data, offset, generation);
    if (record === undefined || record.sequence !== expected) break;
    expected++;
    if (record.kind === KIND_OPERATION) {
      replay.revisionCounter = Math.max(replay.revisionCounter, record.revisionCounter);
    } else {
      replay.blocks.push(record.block);
    }
  }
  for (
    let later = offset + JOURNAL_RECORD_BYTES;
    later + JOURNAL_RECORD_BYTES <= data.length;
    later += JOURNAL_RECORD_BYTES
  ) {
    const record = decodeRecord(view, data, later, generation);
    if (record !== undefined && record.sequence > expected) {
      throw corrupt('a damaged record is followed by intact ones', {
        damagedAtByte: offset,
        intactAtByte: later,
      });
    }
  }
  return replay;
}

type DecodedRecord =
  | { kind: typeof KIND_OPERATION; sequence: number; revisionCounter: number }
  | { kind: typeof KIND_BLOCK; sequence: number; block: JournalBlockRecord };

function decodeRecord(
  view: DataView,
  data: Buffer,
  offset: number,
  generation: number,
): DecodedRecord | undefined {
  const stored = view.getUint32(offset, true);
  if (stored !== checksumOf(data.subarray(offset + 4, offset + JOURNAL_RECORD_BYTES))) return undefined;
  if (view.getUint32(offset + 28, true) !== generation >>> 0) return undefined;
  const kindAndState = view.getUint32(offset + 4, true);
  const kind = kindAndState & 0xff;
  const state = (kindAndState >>> 8) & 0xff;
  const sequence = view.getUint32(offset + 8, true);
  if (kind === KIND_OPERATION) {
    const revisionCounter = view.getUint32(offset + 12, true) + view.getUint32(offset + 16, true) * 2 ** 32;
    return { kind, sequence, revisionCounter };
  }
  if (kind !== KIND_BLOCK || state > 2) return undefined;
  const block = view.getUint32(offset + 16, true) + view.getUint32(offset + 20, true) * 2 ** 32;
  return {
    kind,
    sequence,
    block: {
      sequence,
      layerId: view.getUint32(offset + 12, true),
      block,
      state: state as BlockStateValue,
      checksum: view.getUint32(offset + 24, true),
    },
  };
}
