import { fileURLToPath } from 'node:url';
import { HornbillError } from '../../errors.ts';
import { silentLogger } from '../../logging.ts';
import { IoOperation, type IoOperationValue, IoStats } from '../../metrics/io-stats.ts';
import type { MappingRun } from '../../storage/replica-store.ts';
import type { BlockDevice } from '../block-device.ts';
import { ReplicaClient } from '../protocol/replica-client.ts';
import { IoChannel } from '../workers/io-channel.ts';
import type { IoRequestFields } from '../workers/io-protocol.ts';
import type { LaneThreadStarter } from '../workers/lane-thread.ts';
import { type EngineHandlerData, EngineOperation, FLAG_FUA } from './engine-handler.ts';

/** One request's payload at most: 1 MiB (the iSCSI target's largest transfer); larger I/O is split. */
const PIECE_BYTES = 1024 * 1024;
const HANDLER_MODULE = fileURLToPath(new URL('./engine-handler.ts', import.meta.url));

export interface ChannelDeviceOptions extends Omit<EngineHandlerData, 'control'> {
  /** 0: the engine runs on this thread (through the same rings); 1: in a worker thread. */
  workers: 0 | 1;
  control?: { host: string; port: number };
  /** Payload slab chunks of 1 MiB: requests in flight with data at once (default 64). */
  slabChunks?: number;
  /** Where the frontend's I/O is counted (kept by the caller across restarts); a new one by default. */
  stats?: IoStats;
  /** With workers 1: the thread that serves the engine (default: a worker thread of its own). */
  laneThread?: LaneThreadStarter;
}

/**
 * The frontend's view of an engine that runs behind an IoChannel: reads, writes, unmaps and
 * flushes become descriptors in SharedArrayBuffer rings, data goes through the shared slab.
 * With `workers: 1` the engine's fan-out, checksums and rebuilds run on their own thread,
 * while the frontend thread parses iSCSI or NBD; `workers: 0` keeps everything on one
 * thread, so benchmarks show what the worker buys.
 */
export class ChannelBlockDevice implements BlockDevice {
  readonly sectorSize = 512;
  readonly physicalBlockSize = 4096;
  readonly name: string;
  readonly channel: IoChannel;
  /** The engine's control port (status, snapshot, addReplica, …; see EngineControlServer). */
  readonly control: ReplicaClient;
  readonly controlPort: number;
  /** Counts, bytes, errors and latency of every read, write, unmap and flush. */
  readonly stats: IoStats;
  private size: number;
  private nextRequestId = 0;

  private constructor(
    name: string,
    channel: IoChannel,
    control: ReplicaClient,
    controlPort: number,
    sizeBytes: number,
    stats: IoStats,
  ) {
    this.stats = stats;
    this.name = name;
    this.channel = channel;
    this.control = control;
    this.controlPort = controlPort;
    this.size = sizeBytes;
  }

  static async open(options: ChannelDeviceOptions): Promise<ChannelBlockDevice> {
    const handlerData: EngineHandlerData = {
      name: options.name,
      replicas: options.replicas,
      replicaTimeoutMs: options.replicaTimeoutMs,
      preferLocalReplica: options.preferLocalReplica,
      control: options.control ?? { host: '127.0.0.1', port: 0 },
      hostedReplica: options.hostedReplica,
    };
    const channel = await IoChannel.open({
      workerCount: options.workers,
      handlerModule: HANDLER_MODULE,
      handlerData,
      ringCapacity: 128,
      ...(options.laneThread === undefined ? {} : { laneThread: options.laneThread }),
      slab: { chunkSizeBytes: PIECE_BYTES, chunkCount: options.slabChunks ?? 64 },
    });
    try {
      const fields: IoRequestFields = {
        operation: EngineOperation.controlPort,
        offsetBytes: 0,
        lengthBytes: 0,
        chunkIndex: -1,
        requestId: 0,
        flags: 0,
      };
      const port = await channel.submit(fields);
      const control = new ReplicaClient({
        address: { host: handlerData.control.host, port },
        log: silentLogger,
        timeoutMs: 3_600_000,
      });
      await control.connect();
      const status = await control.control<{ sizeBytes: number }>('status');
      return new ChannelBlockDevice(
        options.name,
        channel,
        control,
        port,
        status.sizeBytes,
        options.stats ?? new IoStats(),
      );
    } catch (error) {
      await channel.close();
      throw error;
    }
  }

  get sizeBytes(): number {
    return this.size;
  }

  /** Re-reads the volume size from the engine (after an expansion). */
  async refreshSize(): Promise<number> {
    this.size = (await this.control.control<{ sizeBytes: number }>('status')).sizeBytes;
    return this.size;
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    const started = performance.now();
    try {
      for (let done = 0; done < target.length; done += PIECE_BYTES) {
        const piece = target.subarray(done, Math.min(target.length, done + PIECE_BYTES));
        await this.withChunk(piece.length, async (chunk) => {
          await this.submit(EngineOperation.read, offsetBytes + done, piece.length, chunk, 0);
          this.channel.slab.copyOut(chunk, piece);
        });
      }
    } catch (error) {
      this.count(IoOperation.read, 0, started, false);
      throw error;
    }
    this.count(IoOperation.read, target.length, started, true);
  }

  async write(offsetBytes: number, source: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    const started = performance.now();
    const flags = options?.fua === true ? FLAG_FUA : 0;
    try {
      for (let done = 0; done < source.length; done += PIECE_BYTES) {
        const piece = source.subarray(done, Math.min(source.length, done + PIECE_BYTES));
        await this.withChunk(piece.length, async (chunk) => {
          this.channel.slab.copyIn(chunk, piece);
          await this.submit(EngineOperation.write, offsetBytes + done, piece.length, chunk, flags);
        });
      }
    } catch (error) {
      this.count(IoOperation.write, 0, started, false);
      throw error;
    }
    this.count(IoOperation.write, source.length, started, true);
  }

  async unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    const started = performance.now();
    try {
      await this.submit(EngineOperation.unmap, offsetBytes, lengthBytes, -1, 0);
    } catch (error) {
      this.count(IoOperation.unmap, 0, started, false);
      throw error;
    }
    this.count(IoOperation.unmap, lengthBytes, started, true);
  }

  async flush(): Promise<void> {
    const started = performance.now();
    try {
      await this.submit(EngineOperation.flush, 0, 0, -1, 0);
    } catch (error) {
      this.count(IoOperation.flush, 0, started, false);
      throw error;
    }
    this.count(IoOperation.flush, 0, started, true);
  }

  private count(operation: IoOperationValue, bytes: number, started: number, ok: boolean): void {
    this.stats.record(operation, bytes, performance.now() - started, ok);
  }

  async mappingStatus(offsetBytes: number, lengthBytes: number): Promise<MappingRun[]> {
    return this.control.control<MappingRun[]>('mappingStatus', { offsetBytes, lengthBytes });
  }

  async close(): Promise<void> {
    this.control.close();
    await this.channel.close({ drain: true, drainTimeoutMs: 30_000 });
  }

  private async withChunk(bytes: number, use: (chunk: number) => Promise<void>): Promise<void> {
    const slab = this.channel.slab;
    let chunk = slab.tryAllocate(bytes);
    while (chunk < 0) {
      await slab.whenAvailable(bytes);
      chunk = slab.tryAllocate(bytes);
    }
    try {
      await use(chunk);
    } finally {
      slab.free(chunk);
    }
  }

  private submit(
    operation: number,
    offsetBytes: number,
    lengthBytes: number,
    chunkIndex: number,
    flags: number,
  ): Promise<number> {
    if (offsetBytes > Number.MAX_SAFE_INTEGER)
      throw new HornbillError('INVALID_ARGUMENT', 'offset out of range');
    this.nextRequestId = (this.nextRequestId + 1) | 0;
    return this.channel.submit({
      operation,
      offsetBytes,
      lengthBytes,
      chunkIndex,
      requestId: this.nextRequestId,
      flags,
    });
  }
}
