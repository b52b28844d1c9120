import net from 'node:net';
import { HornbillError } from '../../errors.ts';

export interface PortRange {
  first: number;
  last: number;
}

/** "10000-10999" → {first, last}; a range of at least one port within 1-65535. */
export function parsePortRange(text: string): PortRange {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const first = match === null ? Number.NaN : Number(match[1]);
  const last = match === null ? Number.NaN : Number(match[2]);
  if (match === null || first < 1 || last > 65535 || first > last) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `a port range is FIRST-LAST within 1-65535, not ${JSON.stringify(text)}`,
      {
        text,
      },
    );
  }
  return { first, last };
}

/** Whether `host:port` can be bound now (a listening socket is opened and closed at once). */
export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export interface PortAllocatorOptions {
  host: string;
  /** Ports to hand out; undefined: every allocation is 0 (the replica binds a free port). */
  range: PortRange | undefined;
  /** Checks that a port can be bound (default isPortFree); injected by tests. */
  probe?: (host: string, port: number) => Promise<boolean>;
}

/**
 * Hands out the replica ports of one instance manager from its configured range. A port
 * stays reserved for its instance until released (a replica restarted after a crash gets
 * the same port back, so the engine's address for it stays valid). Ports held by other
 * processes are skipped: each candidate is probed by binding it. Allocation starts after
 * the last port handed out, so a port just released is not reused at once.
 */
export class PortAllocator {
  private readonly options: PortAllocatorOptions;
  private readonly reserved = new Set<number>();
  private cursor: number;

  constructor(options: PortAllocatorOptions) {
    this.options = options;
    this.cursor = options.range?.first ?? 0;
  }

  get range(): PortRange | undefined {
    return this.options.range;
  }

  get reservedPorts(): number[] {
    return [...this.reserved].sort((a, b) => a - b);
  }

  /** A free port of the range (reserved from now on), or 0 without a range. */
  async allocate(): Promise<number> {
    const range = this.options.range;
    if (range === undefined) return 0;
    const size = range.last - range.first + 1;
    const probe = this.options.probe ?? isPortFree;
    for (let tried = 0; tried < size; tried++) {
      const port = this.cursor;
      this.cursor = port >= range.last ? range.first : port + 1;
      if (this.reserved.has(port)) continue;
      // Reserved before the probe, so that a concurrent allocate cannot take it too.
      this.reserved.add(port);
      if (await probe(this.options.host, port)) return port;
      this.reserved.delete(port);
    }
    throw new HornbillError(
      'INSTANCE_LIMIT_REACHED',
      `no free port in the replica port range ${range.first}-${range.last}`,
      { first: range.first, last: range.last, reserved: this.reserved.size },
    );
  }

  release(port: number): void {
    this.reserved.delete(port);
  }
}
