import net from 'node:net';
import { computeDigest } from '../../../../src/dataplane/iscsi/digest.ts';
import { BHS_BYTES, Flag, Opcode, PduHeader, paddedLength } from '../../../../src/dataplane/iscsi/pdu.ts';
import { encodeTextKeys, parseTextKeys, type TextPairs } from '../../../../src/dataplane/iscsi/text.ts';

/** A received PDU: its header and data segment (digests stripped). */
export interface RawPdu {
  header: PduHeader;
  data: Buffer;
}

/**
 * A deliberately dumb iSCSI client for tests: it writes whatever bytes it is told and reads
 * PDUs back, so tests can send malformed input and watch how the target answers.
 */
export class RawClient {
  readonly socket: net.Socket;
  private buffered = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  headerDigest = false;
  dataDigest = false;
  cmdSN = 0;
  expStatSN = 0;
  private nextTag = 1;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  tag(): number {
    return this.nextTag++;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Encodes a PDU with the client's current digest settings. */
  encode(header: PduHeader, data: Buffer | null = null): Buffer {
    const dataBytes = data?.length ?? 0;
    header.dataSegmentLength = dataBytes;
    const parts: Buffer[] = [Buffer.from(header.bytes)];
    if (this.headerDigest) parts.push(digestBytes(computeDigest(header.bytes)));
    if (dataBytes > 0) {
      const padded = Buffer.alloc(paddedLength(dataBytes));
      data!.copy(padded);
      parts.push(padded);
      if (this.dataDigest) parts.push(digestBytes(computeDigest(padded)));
    }
    return Buffer.concat(parts);
  }

  send(header: PduHeader, data: Buffer | null = null): void {
    this.write(this.encode(header, data));
  }

  /** Reads the next PDU, or null when the connection closes (or nothing comes within the timeout). */
  async read(timeoutMs = 5000): Promise<RawPdu | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pdu = this.take();
      if (pdu !== null) return pdu;
      if (this.closed) return null;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves true once the target has closed the connection (false after the timeout). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      this.buffered = Buffer.alloc(0);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private take(): RawPdu | null {
    const headerBytes = BHS_BYTES + (this.headerDigest ? 4 : 0);
    if (this.buffered.length < headerBytes) return null;
    const header = new PduHeader(Buffer.from(this.buffered.subarray(0, BHS_BYTES)));
    const dataBytes = header.dataSegmentLength;
    const total =
      headerBytes +
      header.totalAhsLength * 4 +
      paddedLength(dataBytes) +
      (this.dataDigest && dataBytes > 0 ? 4 : 0);
    if (this.buffered.length < total) return null;
    const dataStart = headerBytes + header.totalAhsLength * 4;
    const data = Buffer.from(this.buffered.subarray(dataStart, dataStart + dataBytes));
    this.buffered = this.buffered.subarray(total);
    return { header, data };
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** A full login (security → operational → full feature) with the given extra keys. */
  async login(
    targetName: string | null,
    extra: TextPairs = [],
    initiatorName = 'iqn.2026-11.io.hornbill:raw',
  ): Promise<void> {
    const keys: TextPairs = [
      ['InitiatorName', initiatorName],
      ['SessionType', targetName === null ? 'Discovery' : 'Normal'],
      ['AuthMethod', 'None'],
    ];
    if (targetName !== null) keys.push(['TargetName', targetName]);
    let response = await this.loginRequest(0, 1, true, keys);
    if (response === null || response.header.loginStatus !== 0) throw new Error('security stage failed');
    response = await this.loginRequest(1, 3, true, extra);
    if (response === null || response.header.loginStatus !== 0) throw new Error('operational stage failed');
    const answers = new Map(parsePairs(response.data));
    this.cmdSN = response.header.expCmdSN;
    this.headerDigest = answers.get('HeaderDigest') === 'CRC32C';
    this.dataDigest = answers.get('DataDigest') === 'CRC32C';
  }

  async loginRequest(
    currentStage: number,
    nextStage: number,
    transit: boolean,
    keys: TextPairs,
  ): Promise<RawPdu | null> {
    const header = new PduHeader();
    header.opcode = Opcode.LOGIN_REQUEST;
    header.immediate = true;
    header.flags = (transit ? Flag.TRANSIT : 0) | (currentStage << 2) | (transit ? nextStage : 0);
    header.bytes.set([0x80, 0, 0x12, 0x34, 0x56, 0x78], 8);
    header.initiatorTaskTag = this.tag();
    header.connectionId = 1;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    this.send(header, encodeTextKeys(keys));
    const response = await this.read();
    if (response !== null) this.expStatSN = response.header.statSN + 1;
    return response;
  }

  /** A SCSI Command PDU header (caller adds the CDB and data). */
  scsiCommand(
    cdb: number[],
    options: { read?: boolean; write?: boolean; final?: boolean; length?: number } = {},
  ): PduHeader {
    const header = new PduHeader();
    header.opcode = Opcode.SCSI_COMMAND;
    header.flags =
      (options.final === false ? 0 : Flag.FINAL) |
      (options.read ? Flag.READ : 0) |
      (options.write ? Flag.WRITE : 0) |
      1;
    header.initiatorTaskTag = this.tag();
    header.expectedDataTransferLength = options.length ?? 0;
    header.cmdSN = this.cmdSN++;
    header.expStatSN = this.expStatSN;
    header.bytes.set(cdb, 32);
    return header;
  }
}

function digestBytes(digest: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(digest >>> 0, 0);
  return bytes;
}

function parsePairs(data: Buffer): TextPairs {
  const parsed = parseTextKeys(data);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.pairs;
}
