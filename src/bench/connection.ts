import type { HornbillError } from '../errors.ts';

/**
 * One I/O in flight, owned by the load generator and reused for the whole run. A
 * connection calls `complete` once per read or write; `transportState` is the
 * connection's to keep a per-request callback in, so that submitting allocates nothing.
 */
export interface IoRequest {
  complete(error: HornbillError | null): void;
  transportState: unknown;
}

/**
 * A connection to a block target (an iSCSI LUN or an NBD export) with up to `queueDepth`
 * requests in flight. `data.length` is the transfer size; reads land in `data` directly.
 */
export interface BlockConnection {
  readonly sizeBytes: number;
  /** Offsets and lengths must be multiples of this (the LUN's logical block). */
  readonly blockBytes: number;
  /** Largest single transfer. */
  readonly maximumTransferBytes: number;
  /** What the connection talks to, for reports ("iscsi 127.0.0.1:3260 iqn… lun 0"). */
  readonly description: string;
  read(offsetBytes: number, data: Buffer, request: IoRequest): void;
  write(offsetBytes: number, data: Buffer, request: IoRequest): void;
  close(): Promise<void>;
}
