import fs from 'node:fs';
import { fromSystemError, HornbillError, isHornbillError } from '../errors.ts';
import { DIRECT_IO_ALIGNMENT, isMemoryAligned } from '../native.ts';

/**
 * A second descriptor of a layer file, opened with O_DIRECT, for the layers a rebuild fills:
 * their data is not read soon, and copying it into the page cache costs the target's thread
 * more than the disk write costs the device (bench/RESULTS.md, engine section). Writes go to
 * libuv's thread pool (`fs.write`), so the owning thread goes on receiving the next transfer
 * while the device takes this one; several are in flight at once.
 *
 * O_DIRECT needs the memory, the file offset and the length aligned to the device's logical
 * block (4096 covers every device here): callers pass memory from `alignedBuffer`
 * (native.ts). A file system that refuses O_DIRECT (tmpfs) refuses the open with EINVAL:
 * `open` then returns undefined and the caller writes through the page cache as before.
 *
 * The descriptor is closed when its owner releases it and no write is in flight, so a write
 * on the pool never meets a closed (or reused) descriptor number.
 */
export class DirectDescriptor {
  private readonly path: string;
  private fd: number;
  private inFlight = 0;
  private released = false;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /** The file opened for direct writes, or undefined when its file system refuses O_DIRECT. */
  static open(path: string): DirectDescriptor | undefined {
    try {
      return new DirectDescriptor(path, fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_DIRECT));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
      throw fromSystemError(error, `opening layer file ${path} for direct writes`);
    }
  }

  /** Whether `data` can go through this descriptor (aligned memory, whole 4 KiB blocks). */
  static accepts(data: Uint8Array, position: number): boolean {
    return (
      data.length > 0 &&
      data.length % DIRECT_IO_ALIGNMENT === 0 &&
      position % DIRECT_IO_ALIGNMENT === 0 &&
      isMemoryAligned(data)
    );
  }

  get writesInFlight(): number {
    return this.inFlight;
  }

  /**
   * Writes all of `data` at `position` on the thread pool; `done` gets a coded error
   * (STORE_IO, STORE_NO_SPACE…) or nothing. `data` must not change until `done` runs.
   */
  write(data: Uint8Array, position: number, done: (error?: Error) => void): void {
    if (this.released) {
      done(new HornbillError('STORE_IO', `writing layer file ${this.path}: its direct descriptor is closed`));
      return;
    }
    this.inFlight++;
    const finish = (error?: Error) => {
      this.inFlight--;
      if (this.released && this.inFlight === 0) this.closeNow();
      done(error);
    };
    const step = (written: number) => {
      fs.write(this.fd, data, written, data.length - written, position + written, (error, count) => {
        if (error !== null) {
          finish(fromSystemError(error, `writing layer file ${this.path}`, { position }) as Error);
          return;
        }
        const total = written + count;
        if (total === data.length) finish();
        else if (count === 0 || count % DIRECT_IO_ALIGNMENT !== 0)
          finish(
            new HornbillError('STORE_IO', `writing layer file ${this.path}: short direct write`, {
              position,
              written: total,
            }),
          );
        else step(total);
      });
    };
    step(0);
  }

  /** The owner is done with it: closed now, or when the last write in flight ends. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.inFlight === 0) this.closeNow();
  }

  private closeNow(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    fs.closeSync(fd);
  }
}

/**
 * Whether a direct write failed because the file system refuses O_DIRECT for it (EINVAL
 * after an open that succeeded: some file systems accept the flag and refuse the I/O). The
 * data is intact in the caller's memory; writing it through the page cache is the answer.
 */
export function isDirectRefusal(error: unknown): boolean {
  return isHornbillError(error, 'STORE_IO') && error.details.systemCode === 'EINVAL';
}
