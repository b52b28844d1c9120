/**
 * What an initiator connection is opened with: its options, the command callback type, and
 * opening the TCP socket.
 */
import net from 'node:net';
import { HornbillError } from '../../../errors.ts';
import { whenConnected } from '../../tcp-connect.ts';
import type { ChapCredentials } from '../chap.ts';
import type { ScsiResult } from './scsi-request.ts';

export interface IscsiInitiatorOptions {
  host: string;
  port: number;
  /** The target to log in to; null for a discovery session. */
  targetName: string | null;
  initiatorName?: string;
  lun?: number;
  headerDigest?: boolean;
  dataDigest?: boolean;
  chap?: { initiator: ChapCredentials; target?: ChapCredentials } | null;
  /** Commands in flight at most (further ones wait in order). Default 32. */
  queueDepth?: number;
  /** Largest data segment we accept (bytes). Default 256 KiB. */
  maxRecvDataSegmentLength?: number;
  maxBurstLength?: number;
  firstBurstLength?: number;
  immediateData?: boolean;
  initialR2T?: boolean;
  /** A command (or login step) without an answer for this long fails the connection. Default 30 s. */
  timeoutMs?: number;
}

export type CommandCallback = (error: HornbillError | null, result: ScsiResult) => void;

export function openSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return whenConnected(net.connect({ host, port }), timeoutMs, (reason, timedOut) =>
    timedOut
      ? new HornbillError('ISCSI_TIMEOUT', `connecting to ${host}:${port} timed out`)
      : new HornbillError('ISCSI_CONNECTION_CLOSED', `cannot connect to ${host}:${port}: ${reason}`),
  );
}
