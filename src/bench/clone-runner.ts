import { assert } from '../assert.ts';
import { HornbillError } from '../errors.ts';
import type { BlockConnection, IoRequest } from './connection.ts';
import { Permutation, XorShift32 } from './offsets.ts';
import { type BlockSizeRange, type JobOptions, jobShape } from './options.ts';
import { CloneStats, ERRNO_EILSEQ, ERRNO_EIO } from './stats.ts';
import type { ReadBackCursor, VerifyState } from './verify.ts';

/** The smallest buffer per slot when a job reads back what it wrote (bounded: iodepth ≤ 1024). */
const READ_BACK_BYTES = 128 * 1024;

/** Errors after which a connection takes no more I/O. */
const CONNECTION_LOST: ReadonlySet<string> = new Set([
  'ISCSI_CONNECTION_CLOSED',
  'ISCSI_PROTOCOL_ERROR',
  'ISCSI_TIMEOUT',
  'BENCH_NBD_CONNECTION_CLOSED',
]);

/** The region one clone works on, in bytes of the target. */
export interface CloneRegion {
  offsetBytes: number;
  lengthBytes: number;
}

/** One I/O slot: a buffer sized for the largest block, reused for every I/O of the run. */
class Slot implements IoRequest {
  transportState: unknown = null;
  readonly buffer: Buffer;
  /** Views of `buffer` by length in alignment units, made once each. */
  private readonly views = new Map<number, Buffer>();
  /** Two words per verify unit of the largest I/O (see VerifyState.prepareRead). */
  readonly expectation: Uint32Array;
  isWrite = false;
  offsetBytes = 0;
  data: Buffer | null = null;
  startedMs = 0;
  readonly complete: (error: HornbillError | null) => void;

  constructor(
    bufferBytes: number,
    verifyUnits: number,
    onComplete: (slot: Slot, error: HornbillError | null) => void,
  ) {
    this.buffer = Buffer.alloc(bufferBytes);
    this.expectation = new Uint32Array(verifyUnits * 2);
    this.complete = (error) => onComplete(this, error);
  }

  view(length: number): Buffer {
    if (length === this.buffer.length) return this.buffer;
    let view = this.views.get(length);
    if (view === undefined) {
      view = this.buffer.subarray(0, length);
      this.views.set(length, view);
    }
    return view;
  }
}

/**
 * Runs one job clone against one connection: keeps `iodepth` I/Os in flight, each
 * completion submitting the next, until the runtime or the size is done; records
 * completion latency per direction; checks reads when verifying. Then, for a job that
 * wrote with verify and do_verify, reads back what it wrote (`readBack`).
 */
export class CloneRunner {
  readonly stats = new CloneStats();
  readonly job: JobOptions;
  readonly cloneIndex: number;
  readonly region: CloneRegion;
  private readonly connection: BlockConnection;
  private readonly verify: VerifyState | null;
  private readonly slots: Slot[] = [];
  private readonly random: XorShift32;
  private readonly permutation: Permutation | null;
  private readonly alignmentBytes: number;
  private readonly shape: ReturnType<typeof jobShape>;
  private sequentialCursor: number;
  private issuedBytes = 0;
  private inFlight = 0;
  private stopping = false;
  private readBackCursor: ReadBackCursor | null = null;
  private deadlineMs = Number.POSITIVE_INFINITY;
  private rampEndMs = 0;
  private done: (() => void) | null = null;
  private phase: 'idle' | 'main' | 'read-back' | 'done' = 'idle';

  constructor(options: {
    job: JobOptions;
    cloneIndex: number;
    jobIndex: number;
    connection: BlockConnection;
    region: CloneRegion;
    verify: VerifyState | null;
  }) {
    const { job, connection, region } = options;
    this.job = job;
    this.cloneIndex = options.cloneIndex;
    this.connection = connection;
    this.region = region;
    this.verify = options.verify;
    this.shape = jobShape(job.rw);
    this.alignmentBytes = Math.min(
      this.shape.reads ? job.readBlockSize.minimumBytes : Number.POSITIVE_INFINITY,
      this.shape.writes ? job.writeBlockSize.minimumBytes : Number.POSITIVE_INFINITY,
    );
    assert(region.offsetBytes % this.alignmentBytes === 0, 'the region starts aligned');
    assert(region.lengthBytes >= this.alignmentBytes, 'the region holds one block');
    this.random = new XorShift32(0x5eed0000 + options.jobIndex * 977 + options.cloneIndex * 7919 + 1);
    this.permutation = this.shape.random
      ? new Permutation(
          Math.floor(region.lengthBytes / this.alignmentBytes),
          options.jobIndex * 131 + options.cloneIndex,
        )
      : null;
    this.sequentialCursor = region.offsetBytes;
    const largestIo = Math.max(
      this.shape.reads ? job.readBlockSize.maximumBytes : 0,
      this.shape.writes ? job.writeBlockSize.maximumBytes : 0,
    );
    // The read-back after verified writes reads runs of up to a slot's buffer: at least 128 KiB.
    const largest =
      this.verify !== null && this.shape.writes && job.doVerify
        ? Math.max(largestIo, READ_BACK_BYTES)
        : largestIo;
    const verifyUnits = this.verify === null ? 0 : largest / this.verify.unitBytes;
    const onComplete = (slot: Slot, error: HornbillError | null) => this.completed(slot, error);
    for (let index = 0; index < job.iodepth; index++) {
      const slot = new Slot(largest, verifyUnits, onComplete);
      // Non-verify writes carry random bytes (fio's default buffer contents).
      if (this.verify === null)
        for (let byte = 0; byte < largest; byte += 4) slot.buffer.writeUInt32LE(this.random.next(), byte);
      this.slots.push(slot);
    }
  }

  get running(): boolean {
    return this.phase === 'main' || this.phase === 'read-back';
  }

  get readingBack(): boolean {
    return this.phase === 'read-back';
  }

  /** Bytes completed before and after the ramp (for the progress line). */
  get completedBytes(): { read: number; write: number; readIos: number; writeIos: number } {
    return {
      read: this.totalReadBytes,
      write: this.totalWriteBytes,
      readIos: this.totalReadIos,
      writeIos: this.totalWriteIos,
    };
  }

  private totalReadBytes = 0;
  private totalWriteBytes = 0;
  private totalReadIos = 0;
  private totalWriteIos = 0;

  /** The main phase; resolves when every slot is idle. `startMs` is shared by a group's clones. */
  run(startMs: number): Promise<void> {
    const job = this.job;
    this.phase = 'main';
    this.stats.startMs = startMs;
    this.rampEndMs = startMs + job.rampTimeMs;
    this.stats.measureStartMs = this.rampEndMs;
    if (job.runtimeMs > 0) this.deadlineMs = this.rampEndMs + job.runtimeMs;
    return this.drive();
  }

  /** Reads back (and checks) the written units from `startUnit` to `endUnit` of the verify state. */
  readBack(startUnit: number, endUnit: number): Promise<void> {
    assert(this.verify !== null, 'read-back needs a verify state');
    this.phase = 'read-back';
    this.stopping = false;
    this.deadlineMs = Number.POSITIVE_INFINITY;
    this.readBackCursor = { unit: startUnit, endUnit, offsetBytes: 0, lengthBytes: 0 };
    return this.drive();
  }

  /** Stops submitting (SIGINT, or a fatal error); in-flight I/O still completes. */
  stop(): void {
    this.stopping = true;
  }

  private drive(): Promise<void> {
    return new Promise((resolve) => {
      this.done = resolve;
      for (const slot of this.slots) this.submitNext(slot);
      this.settleIfIdle();
    });
  }

  private settleIfIdle(): void {
    if (this.inFlight > 0 || this.done === null) return;
    const done = this.done;
    this.done = null;
    if (this.phase === 'main' || this.phase === 'read-back')
      this.stats.endMs = Math.max(this.stats.endMs, performance.now());
    this.phase = 'done';
    done();
  }

  private submitNext(slot: Slot): void {
    if (this.stopping) return;
    if (this.phase === 'read-back') {
      this.submitReadBack(slot);
      return;
    }
    const job = this.job;
    const now = performance.now();
    if (now >= this.deadlineMs) return;
    if (!job.timeBased && this.issuedBytes >= this.region.lengthBytes) return;
    const isWrite =
      job.rw === 'randrw' || job.rw === 'readwrite'
        ? this.random.below(100) >= job.rwmixread
        : this.shape.writes;
    let length = this.chooseLength(isWrite ? job.writeBlockSize : job.readBlockSize);
    let offset: number;
    const regionEnd = this.region.offsetBytes + this.region.lengthBytes;
    if (this.permutation !== null) {
      offset = this.region.offsetBytes + this.permutation.next() * this.alignmentBytes;
    } else {
      if (this.sequentialCursor >= regionEnd) this.sequentialCursor = this.region.offsetBytes;
      offset = this.sequentialCursor;
    }
    length = Math.min(length, regionEnd - offset);
    if (!job.timeBased) length = Math.min(length, this.region.lengthBytes - this.issuedBytes);
    if (this.permutation === null) this.sequentialCursor = offset + length;
    this.issuedBytes += length;
    this.start(slot, isWrite, offset, length);
  }

  private submitReadBack(slot: Slot): void {
    const cursor = this.readBackCursor!;
    if (!this.verify!.nextWrittenRun(cursor, slot.buffer.length)) return;
    this.start(slot, false, cursor.offsetBytes, cursor.lengthBytes);
  }

  private start(slot: Slot, isWrite: boolean, offset: number, length: number): void {
    const data = slot.view(length);
    slot.isWrite = isWrite;
    slot.offsetBytes = offset;
    slot.data = data;
    this.inFlight++;
    this.stats.depth.record(this.inFlight);
    const verify = this.verify;
    if (isWrite) {
      this.stats.issuedWrites++;
      if (verify !== null) verify.prepareWrite(offset, data);
      slot.startedMs = performance.now();
      this.connection.write(offset, data, slot);
    } else {
      this.stats.issuedReads++;
      if (verify !== null) verify.prepareRead(offset, length, slot.expectation);
      slot.startedMs = performance.now();
      this.connection.read(offset, data, slot);
    }
  }

  /** A block size from the range: a multiple of its minimum, uniformly chosen. */
  private chooseLength(range: BlockSizeRange): number {
    if (range.minimumBytes === range.maximumBytes) return range.minimumBytes;
    const steps = range.maximumBytes / range.minimumBytes;
    return range.minimumBytes * (1 + this.random.below(steps));
  }

  private completed(slot: Slot, error: HornbillError | null): void {
    const now = performance.now();
    this.inFlight--;
    const data = slot.data!;
    const length = data.length;
    const verify = this.verify;
    if (slot.isWrite && verify !== null) verify.completeWrite(slot.offsetBytes, length, error === null);
    if (error !== null) {
      this.stats.countError(error, ERRNO_EIO);
      const direction = slot.isWrite ? 'write' : 'read';
      const policy = this.job.continueOnError;
      // A broken connection ends the clone whatever the policy: every further I/O would fail at once.
      if (CONNECTION_LOST.has(error.code) || !(policy === 'all' || policy === 'io' || policy === direction))
        this.stopping = true;
    } else {
      if (slot.isWrite) {
        this.totalWriteBytes += length;
        this.totalWriteIos++;
      } else {
        this.totalReadBytes += length;
        this.totalReadIos++;
      }
      if (now >= this.rampEndMs) {
        const latencyNs = Math.round((now - slot.startedMs) * 1e6);
        (slot.isWrite ? this.stats.write : this.stats.read).record(length, latencyNs, now);
      }
      if (!slot.isWrite && verify !== null) {
        const corrupted = verify.checkRead(slot.offsetBytes, data, slot.expectation);
        if (corrupted > 0) {
          this.stats.countError(
            new HornbillError(
              'BENCH_VERIFY_FAILED',
              `job ${this.job.name}: corrupted block at offset ${verify.lastCorruptionOffsetBytes}` +
                (corrupted > 1 ? ` and ${corrupted - 1} more` : '') +
                ` in the read of ${length} bytes at offset ${slot.offsetBytes}`,
              { offsetBytes: verify.lastCorruptionOffsetBytes, readOffsetBytes: slot.offsetBytes },
            ),
            ERRNO_EILSEQ,
          );
          const policy = this.job.continueOnError;
          if (this.job.verifyFatal && !(policy === 'all' || policy === 'verify')) this.stopping = true;
        }
      }
    }
    slot.data = null;
    this.submitNext(slot);
    this.settleIfIdle();
  }

  /** One bandwidth / IOPS sample (the orchestrator calls this every sample period after the ramp). */
  sample(periodMs: number): void {
    if (this.shape.reads || this.verify !== null) this.stats.read.sample(periodMs);
    if (this.shape.writes) this.stats.write.sample(periodMs);
  }
}

/** The regions of a job's clones on a target of `targetBytes` (fio's offset, size, offset_increment). */
export function cloneRegions(job: JobOptions, targetBytes: number, blockBytes: number): CloneRegion[] {
  const regions: CloneRegion[] = [];
  const shape = jobShape(job.rw);
  const alignment = Math.min(
    shape.reads ? job.readBlockSize.minimumBytes : Number.POSITIVE_INFINITY,
    shape.writes ? job.writeBlockSize.minimumBytes : Number.POSITIVE_INFINITY,
  );
  for (const [what, value] of [
    ['block size', alignment],
    ['offset', job.offsetBytes],
    ['offset_increment', job.offsetIncrementBytes],
  ] as const) {
    if (value % blockBytes !== 0)
      throw new HornbillError(
        'BENCH_TARGET_INVALID',
        `job ${job.name}: ${what} ${value} is not a multiple of the target's ${blockBytes}-byte block`,
      );
  }
  if (job.offsetBytes % alignment !== 0 || job.offsetIncrementBytes % alignment !== 0)
    throw new HornbillError(
      'CLI_USAGE',
      `job ${job.name}: offset and offset_increment must be multiples of the block size ${alignment}`,
    );
  for (let clone = 0; clone < job.numjobs; clone++) {
    const offsetBytes = job.offsetBytes + clone * job.offsetIncrementBytes;
    const available = targetBytes - offsetBytes;
    const wanted = job.sizeBytes ?? available;
    const lengthBytes = Math.floor(Math.min(wanted, available) / alignment) * alignment;
    if (available <= 0 || lengthBytes < alignment)
      throw new HornbillError(
        'BENCH_TARGET_INVALID',
        `job ${job.name}, clone ${clone}: offset ${offsetBytes} leaves no room on a target of ${targetBytes} bytes`,
      );
    if (job.sizeBytes !== null && job.sizeBytes > available)
      throw new HornbillError(
        'BENCH_TARGET_INVALID',
        `job ${job.name}, clone ${clone}: offset ${offsetBytes} + size ${job.sizeBytes} is past the end of the target (${targetBytes} bytes)`,
      );
    regions.push({ offsetBytes, lengthBytes });
  }
  return regions;
}
