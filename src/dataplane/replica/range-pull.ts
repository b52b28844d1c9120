/**
 * The rebuild target's side of a rebuild: on the engine's `pullRange` request, the target
 * replica compares one range of one layer with a source replica's and copies what differs
 * straight from that source — the data goes source → target once, not source → engine →
 * target (Longhorn's sync agent model: half the rebuild traffic crosses the network, and
 * the engine's thread is left to the volume's I/O). The engine keeps the orchestration:
 * which layers, which ranges from which source, progress, retries.
 */
import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { alignedBuffer } from '../../native.ts';
import { BLOCK_SIZE, MAX_IO_BLOCKS } from '../../storage/constants.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
import { type ReplicaAddress, ReplicaClient } from '../protocol/replica-client.ts';
import { BandwidthLimiter } from '../sync/bandwidth-limiter.ts';
import { STATE_DATA } from '../sync/packed-reads.ts';
import {
  type BlockMap,
  blockMap,
  countDataBlocks,
  differs,
  TRANSFER_DATA_BLOCKS,
  transferEnd,
} from '../sync/range-diff.ts';
import { applyLayerWritePastCache } from './apply-layer-write.ts';

export interface PullRequest {
  source: ReplicaAddress;
  layer: string;
  startBlock: number;
  blockCount: number;
  /** Data bytes per second this pull may copy (0: no limit). */
  bandwidthBytesPerSecond: number;
  /** The replica timeout for the connection to the source. */
  timeoutMs: number;
}

export interface PullResult {
  /** Data bytes of the source's range examined (copied, or already held). */
  examinedBytes: number;
  /** Data bytes copied. */
  transferredBytes: number;
}

/**
 * Spans one pull keeps in flight: while the target stores one, the source reads the next.
 * More make the rebuild faster and the volume's own writes to the target wait longer behind
 * it. Measured when spans were 256 KiB stored synchronously through the page cache:
 * rebuilding 1 GiB from 2 sources under a QD1 70/30 workload (bench/compare/rebuild.ts
 * --size 1G, 2026-11-26) took 2.6–2.7 s with 4 in flight and the workload's write p99 was
 * 15–18 ms; 2.5–3.1 s and 9.4 ms with 3; 3.1–3.2 s and 6.3–6.9 ms with 2. So a pull takes 4
 * while the volume is quiet and 2 while it writes (its revision counter moved within
 * QUIET_MS). With 1 MiB spans written past the page cache, 8 in flight instead of 4 did not
 * make a 4 GiB rebuild faster (probe, 2026-11-26: 3.3–4.1 s either way).
 */
const TRANSFERS_WHILE_QUIET = 4;
const TRANSFERS_WHILE_WRITTEN = 2;
const QUIET_MS = 250;
/** A connection to a source unused this long is closed. */
const IDLE_CLOSE_MS = 30_000;

interface SourceConnection {
  client: ReplicaClient;
  users: number;
  lastUsedAt: number;
}

export class RangePuller {
  private readonly store: ReplicaStore;
  private readonly log: Logger;
  private readonly connections = new Map<string, Promise<SourceConnection>>();
  private readonly freeBuffers: Buffer[] = [];
  private sweeper: NodeJS.Timeout | undefined;
  private seenRevision = -1;
  private revisionMovedAt = Number.NEGATIVE_INFINITY;

  constructor(store: ReplicaStore, log: Logger) {
    this.store = store;
    this.log = log;
  }

  /** Copies what differs in one range; `cancelled()` true (the asking engine is gone) stops it. */
  async pull(request: PullRequest, cancelled: () => boolean): Promise<PullResult> {
    const connection = await this.connectionTo(request);
    connection.users++;
    try {
      return await this.copyRange(connection.client, request, cancelled);
    } finally {
      connection.users--;
      connection.lastUsedAt = performance.now();
    }
  }

  /** Closes every connection to a source (the rebuild is over, or the server stops). */
  closeAll(): void {
    const connections = [...this.connections.values()];
    this.connections.clear();
    for (const pending of connections)
      pending.then(
        (connection) => connection.client.close(),
        () => {},
      );
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private async copyRange(
    client: ReplicaClient,
    request: PullRequest,
    cancelled: () => boolean,
  ): Promise<PullResult> {
    const { layer, startBlock, blockCount } = request;
    const wanted = await fromSource(request, client.layerExtents(layer, startBlock, blockCount));
    if (cancelled()) throw engineGone(request);
    const want = blockMap(wanted, startBlock, blockCount);
    const have = blockMap(this.store.layerExtents(layer, startBlock, blockCount), startBlock, blockCount);
    // A limiter per pull starts empty: consecutive pulls cannot each burst a second's worth.
    const limiter = new BandwidthLimiter(request.bandwidthBytesPerSecond, 0);
    const result: PullResult = { examinedBytes: 0, transferredBytes: 0 };
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let index = 0;
    while (index < blockCount && failure === undefined) {
      if (!differs(want, have, index)) {
        if (want.states[index] === STATE_DATA) result.examinedBytes += BLOCK_SIZE;
        index++;
        continue;
      }
      const end = transferEnd(want, have, index, blockCount);
      if (want.states[index] !== STATE_DATA) {
        this.store.writeLayerBlocks(
          layer,
          startBlock + index,
          want.states.subarray(index, end),
          want.checksums.subarray(index, end),
          null,
        );
        index = end;
        continue;
      }
      while (inFlight.size >= this.transfersAllowed()) await Promise.race(inFlight);
      if (failure !== undefined || cancelled()) break;
      const transfer = this.copySpan(client, request, want, index, end, limiter, cancelled, result).then(
        () => {
          inFlight.delete(transfer);
        },
        (error: unknown) => {
          failure ??= { error };
          inFlight.delete(transfer);
        },
      );
      inFlight.add(transfer);
      index = end;
    }
    await Promise.all(inFlight);
    if (failure !== undefined) {
      // What was copied before the failure stays (a retry skips it): the engine counts it.
      if (isHornbillError(failure.error, 'REBUILD_SOURCE_FAILED'))
        failure.error.details.transferredBytes = result.transferredBytes;
      throw failure.error;
    }
    if (cancelled()) throw engineGone(request);
    return result;
  }

  /** Reads the data of blocks [from, end) of the range from the source and stores them. */
  private async copySpan(
    client: ReplicaClient,
    request: PullRequest,
    want: BlockMap,
    from: number,
    end: number,
    limiter: BandwidthLimiter,
    cancelled: () => boolean,
    result: PullResult,
  ): Promise<void> {
    const count = end - from;
    const states = want.states.subarray(from, end);
    const dataBytes = countDataBlocks(states, 0, count) * BLOCK_SIZE;
    await limiter.take(dataBytes);
    // Aligned memory, so that the store can write it past the page cache (DirectDescriptor).
    const transferBytes = TRANSFER_DATA_BLOCKS * BLOCK_SIZE;
    const buffer = this.freeBuffers.pop() ?? alignedBuffer(transferBytes) ?? Buffer.alloc(transferBytes);
    try {
      // One request for the span's data blocks, whatever holes lie between them; it settles
      // before this goes on (the buffer is free again in `finally`).
      const startBlock = request.startBlock + from;
      await fromSource(
        request,
        // Checked once, by the store, against the checksums the source listed (below).
        client.readLayerPacked(request.layer, startBlock, count, buffer.subarray(0, dataBytes), {
          checkedByCaller: true,
        }),
      );
      if (cancelled()) throw engineGone(request);
      const checksums = want.checksums.subarray(from, end);
      const data = buffer.subarray(0, dataBytes);
      try {
        await applyLayerWritePastCache(this.store, startBlock, {
          layer: request.layer,
          states,
          checksums,
          data,
        });
      } catch (error) {
        // The data does not match the checksum the source listed for it: the source's fault.
        if (isHornbillError(error, 'STORE_CHECKSUM_MISMATCH')) throw sourceFailed(request, error);
        throw error;
      }
      result.examinedBytes += dataBytes;
      result.transferredBytes += dataBytes;
    } finally {
      this.freeBuffers.push(buffer);
    }
  }

  /** TRANSFERS_WHILE_QUIET, or TRANSFERS_WHILE_WRITTEN while the volume writes to this replica. */
  private transfersAllowed(): number {
    const now = performance.now();
    const revision = this.store.revisionCounter;
    if (revision !== this.seenRevision) {
      if (this.seenRevision >= 0) this.revisionMovedAt = now;
      this.seenRevision = revision;
    }
    return now - this.revisionMovedAt < QUIET_MS ? TRANSFERS_WHILE_WRITTEN : TRANSFERS_WHILE_QUIET;
  }

  private async connectionTo(request: PullRequest): Promise<SourceConnection> {
    const key = `${request.source.host}:${request.source.port}`;
    const existing = this.connections.get(key);
    if (existing !== undefined) {
      const connection = await existing.catch(() => undefined);
      if (connection !== undefined && !connection.client.failed) return connection;
      if (this.connections.get(key) === existing) this.connections.delete(key);
    }
    const client = new ReplicaClient({
      address: request.source,
      log: this.log,
      timeoutMs: request.timeoutMs,
    });
    const pending = client.connect().then(
      (): SourceConnection => ({ client, users: 0, lastUsedAt: performance.now() }),
      (error: unknown) => {
        client.close();
        throw sourceFailed(request, error);
      },
    );
    this.connections.set(key, pending);
    pending.catch(() => {
      if (this.connections.get(key) === pending) this.connections.delete(key);
    });
    this.sweeper ??= setInterval(() => this.closeIdle(), IDLE_CLOSE_MS / 3).unref();
    return pending;
  }

  private closeIdle(): void {
    const now = performance.now();
    for (const [key, pending] of this.connections) {
      pending.then(
        (connection) => {
          if (connection.users > 0 && !connection.client.failed) return;
          if (!connection.client.failed && now - connection.lastUsedAt < IDLE_CLOSE_MS) return;
          if (this.connections.get(key) === pending) this.connections.delete(key);
          connection.client.close();
        },
        () => {},
      );
    }
  }
}

/** Parses a pullRange request's parameters (they come from the network). */
export function parsePullRequest(params: Record<string, unknown>): PullRequest {
  const source = params.source as Record<string, unknown> | undefined;
  const invalid = (message: string) => new HornbillError('INVALID_ARGUMENT', `pullRange: ${message}`);
  if (typeof source !== 'object' || source === null || typeof source.host !== 'string' || source.host === '')
    throw invalid('source must be {host, port}');
  if (!Number.isInteger(source.port) || (source.port as number) < 1 || (source.port as number) > 65535)
    throw invalid('source.port must be an integer 1-65535');
  if (typeof params.layer !== 'string' || params.layer === '') throw invalid('layer must be a layer name');
  const startBlock = params.startBlock;
  const blockCount = params.blockCount;
  if (!Number.isSafeInteger(startBlock) || (startBlock as number) < 0)
    throw invalid('startBlock must be a whole number of blocks');
  if (!Number.isInteger(blockCount) || (blockCount as number) < 1 || (blockCount as number) > MAX_IO_BLOCKS)
    throw invalid(`blockCount must be 1-${MAX_IO_BLOCKS}`);
  const bandwidth = params.bandwidthBytesPerSecond ?? 0;
  if (typeof bandwidth !== 'number' || !Number.isFinite(bandwidth) || bandwidth < 0)
    throw invalid('bandwidthBytesPerSecond must be a number >= 0');
  const timeoutMs = params.timeoutMs ?? 8000;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 100 || timeoutMs > 600_000)
    throw invalid('timeoutMs must be 100-600000');
  return {
    source: { host: source.host, port: source.port as number },
    layer: params.layer,
    startBlock: startBlock as number,
    blockCount: blockCount as number,
    bandwidthBytesPerSecond: bandwidth,
    timeoutMs,
  };
}

/** Awaits a request to the source; its connection failures and bad data become REBUILD_SOURCE_FAILED. */
async function fromSource<T>(request: PullRequest, pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    if (ReplicaClient.isConnectionFailure(error) || isHornbillError(error, 'STORE_CHECKSUM_MISMATCH'))
      throw sourceFailed(request, error);
    throw error;
  }
}

function sourceFailed(request: PullRequest, cause: unknown): HornbillError {
  const source = `${request.source.host}:${request.source.port}`;
  return new HornbillError(
    'REBUILD_SOURCE_FAILED',
    `copying ${request.layer} blocks ${request.startBlock}+${request.blockCount} from ${source}: ${(cause as Error).message}`,
    { source, cause: isHornbillError(cause) ? cause.code : 'INTERNAL' },
    { cause },
  );
}

function engineGone(request: PullRequest): HornbillError {
  return new HornbillError(
    'REPLICA_UNREACHABLE',
    `pull of ${request.layer} blocks ${request.startBlock}+${request.blockCount} stopped: the engine's connection closed`,
  );
}
