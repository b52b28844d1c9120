import type { NbdTestClient } from '../../helpers/nbd-client.ts';
import { patternBytes } from '../../helpers/temp.ts';

export interface LoadStats {
  writes: number;
  reads: number;
  /** Reads whose data differed from the last written data. */
  mismatches: string[];
  /** Requests that failed. */
  errors: string[];
}

/**
 * A verifying random read/write load through an NBD client. Each of `workers` workers owns
 * one region of the volume and has one request in flight, so requests never overlap and
 * an in-memory model knows what every read must return. Writes are 4 KiB-aligned or
 * 512-byte-granular, up to 16 KiB.
 */
export class VerifyingLoad {
  readonly model: Buffer;
  readonly stats: LoadStats = { writes: 0, reads: 0, mismatches: [], errors: [] };
  private readonly client: NbdTestClient;
  private readonly workers: number;
  private readonly regionBytes: number;
  private stopping = false;
  private running: Promise<void> | undefined;
  private seed = 1;

  constructor(client: NbdTestClient, sizeBytes: number, workers = 8) {
    this.client = client;
    this.workers = workers;
    this.model = Buffer.alloc(sizeBytes);
    this.regionBytes = Math.floor(sizeBytes / workers / 4096) * 4096;
  }

  start(): void {
    this.stopping = false;
    this.running = Promise.all(Array.from({ length: this.workers }, (_, worker) => this.work(worker))).then(
      () => {},
    );
  }

  async stop(): Promise<LoadStats> {
    this.stopping = true;
    await this.running;
    return this.stats;
  }

  /** Runs until `count` more operations are done. */
  async runFor(count: number): Promise<void> {
    const target = this.stats.writes + this.stats.reads + count;
    while (this.stats.writes + this.stats.reads < target && this.stats.errors.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private async work(worker: number): Promise<void> {
    const base = worker * this.regionBytes;
    while (!this.stopping) {
      const seed = this.seed++;
      const aligned = seed % 3 !== 0;
      const unit = aligned ? 4096 : 512;
      const length = unit * (1 + (seed % (aligned ? 4 : 32)));
      const offset = base + Math.floor(((seed * 2654435761) % (this.regionBytes - length)) / unit) * unit;
      try {
        if (seed % 2 === 0) {
          const data = patternBytes(seed, length);
          await this.client.write(offset, data);
          data.copy(this.model, offset);
          this.stats.writes++;
        } else {
          const data = await this.client.read(offset, length);
          this.stats.reads++;
          if (!data.equals(this.model.subarray(offset, offset + length))) {
            this.stats.mismatches.push(`read ${offset}+${length}`);
          }
        }
      } catch (error) {
        this.stats.errors.push(`${(error as Error).message} at ${offset}+${length}`);
        return;
      }
    }
  }
}
